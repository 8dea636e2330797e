"""Mutant S12 (select): an exception from a callback escapes the event loop.

The bug:

    for sock in readable:
        handler.on_recv(sid, data)       # no try/except: one bad message ends the loop

One player's malformed packet makes the application's parser raise, the loop thread dies,
and every player on the server freezes. Caught by: S12 (a raising callback ends at most its
own session).
"""

from __future__ import annotations

from collections.abc import Callable

from impls.select_ import SelectServer


class FragileLoopServer(SelectServer):
    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        callback(*args)  # BUG: the exception propagates out of the loop thread
        return True


make_server = FragileLoopServer
