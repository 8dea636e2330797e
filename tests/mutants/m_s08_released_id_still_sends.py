"""Mutant S8 (blocking): send() checks only that the id is in the table, and a released
session stays in the table until the next sweep.

The bug:

    def send(self, sid, data):
        s = self.sessions.get(sid)
        if s: s.queue.append(data); return True     # no state check
    ...
    # release: close the socket, call on_release, "remove it later"

The application is told its message was sent to a player who is gone; with pooled session
objects, the bytes go to the next player put in that slot. Caught by: S8 (send() on a released
id returns True).
"""

from __future__ import annotations

from typing import Any

from conformance.api import ServerConfig
from impls._core import SessionTable
from impls.blocking import BlockingServer


class KeepingTable(SessionTable[Any]):
    def remove(self, session_id: int) -> Any:
        return self.get(session_id)  # BUG: "removed later", so it is still found


class LateRemoveServer(BlockingServer):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self._table = KeepingTable()

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            if s is None or not s.queue.offer(data):  # BUG: no lifecycle check
                return False
            s.wakeup.notify()
            return True


make_server = LateRemoveServer
