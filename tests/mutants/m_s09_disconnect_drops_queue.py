"""Mutant S9 (select): disconnect() closes at once and drops what was queued.

The bug:

    def disconnect(self, sid):
        s.sock.close()                   # "the player asked to leave"
        release(s)

The last message -- "you were kicked: reason", the final score -- never arrives, because it
was still in the server's queue when the socket closed. Caught by: S9 (accepted bytes are
flushed before the close).
"""

from __future__ import annotations

from impls._core import CloseReason
from impls.select_ import SelectServer


class AbruptDisconnectServer(SelectServer):
    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            return s is not None and self._close(s, CloseReason.RESET)  # BUG: an abort


make_server = AbruptDisconnectServer
