"""Mutant S8 (epoll): send() finds the session through the socket handle the id had.

The bug, as it is usually written:

    fd_of[sid] = conn.fileno()           # "ids for the API, fds for the event loop"
    ...
    def send(self, sid, data):
        s = loop.sessions.get(fd_of.get(sid))    # id -> fd -> whoever has that fd now

The ids are fresh, and a released id finds nothing while nobody holds its fd, so send()
returns False -- until the OS gives that fd to the next connection: then the stale send()
goes into the newcomer's stream and a stale disconnect() closes the newcomer. Caught by: S8
(send() on a released id returns True while a newer session holds its handle).
"""

from __future__ import annotations

import socket

from conformance.api import ServerConfig
from impls._core import CloseReason, admit_send
from impls.epoll_et import EpollServer, Loop, Session


class FdLookupServer(EpollServer):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self._fd_of: dict[int, int] = {}  # BUG: never cleared on release

    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int],
                     loop: Loop) -> Session:
        self._fd_of[sid] = conn.fileno()
        return super()._new_session(sid, conn, addr, loop)

    def _find(self, session_id: int) -> Session | None:
        fd = self._fd_of.get(session_id)
        for loop in self._loops:
            s = loop.sessions.get(fd) if fd is not None else None
            if s is not None:
                return s
        return None

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._find(session_id)
            if not admit_send(s, data):
                return False
            if data and not s.out_armed:
                s.loop.flush_soon.add(s)
                s.loop.wake()
            return True

    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._find(session_id)
            return s is not None and self._close(s, CloseReason.DISCONNECT)


make_server = FdLookupServer
