"""Mutant S7 (epoll): a send_queue_limit of 0 means "no limit".

The bug:

    limit = config.send_queue_limit or sys.maxsize   # "0 = unlimited", as for many settings

Many configuration knobs use 0 for "off" or "unbounded" (timeouts, pool sizes, backlog), so
a library author reads 0 the same way here. But the contract's limit is a number of bytes,
and 0 bytes means "refuse every non-empty send()": an application that sets it to shed load
from a session gets unbounded buffering instead -- the very thing S7 exists to prevent.
Every limit above 0 still works, so only a boundary range that starts at 0 sees it.
Caught by: S7 (`test_s07_limit_boundary` with limit=0: a 1-byte send() returns True).
"""

from __future__ import annotations

import socket
import sys

from impls._core import Lifecycle, SendQueue
from impls.epoll_et import EpollServer, Loop, Session


class ZeroMeansUnlimitedServer(EpollServer):
    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int],
                     loop: Loop) -> Session:
        queue = SendQueue(self._config.send_queue_limit or sys.maxsize)  # BUG: 0 = unbounded
        sock = self.session_socket(conn, sid, edge_triggered=True)
        return Session(sid, sock, addr, queue, Lifecycle(), loop)


make_server = ZeroMeansUnlimitedServer
