"""Mutant S8 (blocking): send() finds the session through the socket handle the id had.

The bug, as it is usually written:

    fd_of[sid] = conn.fileno()           # "ids for the API, fds for the I/O"
    by_fd[conn.fileno()] = session
    ...
    def send(self, sid, data):
        s = by_fd.get(fd_of.get(sid))    # id -> fd -> whoever has that fd now

The ids are fresh, and a released id still finds its old session while nobody holds its fd,
so send() returns False. But the OS gives that fd to the next connection, and `by_fd` then
names the newcomer: the stale send() goes into the newcomer's stream. Caught by: S8 (send()
on a released id returns True while a newer session holds its handle).
"""

from __future__ import annotations

import socket

from conformance.api import ServerConfig
from impls._core import CloseReason, admit_send
from impls.blocking import BlockingServer, Session


class FdLookupServer(BlockingServer):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self._fd_of: dict[int, int] = {}  # BUG: never cleared on release
        self._by_fd: dict[int, Session] = {}

    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int]) -> Session:
        fd = conn.fileno()
        s = super()._new_session(sid, conn, addr)
        self._fd_of[sid] = fd
        self._by_fd[fd] = s
        return s

    def _find(self, session_id: int) -> Session | None:
        fd = self._fd_of.get(session_id)
        return None if fd is None else self._by_fd.get(fd)  # BUG: fd may name a newcomer

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._find(session_id)
            if not admit_send(s, data):
                return False
            s.wakeup.notify()
            return True

    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._find(session_id)
            if s is None or not s.life.close(CloseReason.DISCONNECT):
                return False
            self._begin_close(s)
            return True


make_server = FdLookupServer
