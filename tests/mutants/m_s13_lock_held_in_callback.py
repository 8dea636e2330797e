"""Mutant S13 (select): the loop holds its lock while it calls the application back.

The bug:

    with self.lock:                      # protect the session while we use it
        handler.on_recv(sid, data)       # ...and the handler calls send(), which takes
                                         # self.lock: deadlock on the first echo

Caught by: S13 (send() from inside a callback must not deadlock).
"""

from __future__ import annotations

from collections.abc import Callable

from impls.select_ import SelectServer


class LockedCallbackServer(SelectServer):
    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        with self._lock:  # BUG: held across the callback; send() needs it too
            return super()._call(callback, *args)


make_server = LockedCallbackServer
