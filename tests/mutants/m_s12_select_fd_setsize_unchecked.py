"""Mutant S12 (select): the accepted socket's descriptor number is never checked.

The bug:

    conn, addr = listener.accept()
    conn.setblocking(False)              # no `if conn.fileno() >= FD_SETSIZE`
    sessions[conn] = new_session(conn)   # next turn: select([..., conn], ...)

An fd_set is a bitmap of FD_SETSIZE bits (1024 on Linux): select() cannot watch a descriptor
numbered 1024 or more (CPython raises ValueError, C overwrites memory past the set). Once the
process holds 1,024 descriptors -- sessions, files, the database pool -- the next accepted
connection kills the loop thread, and every session with it. The reference model refuses
(closes) such a connection and serves on; a cosmic-ray run found that no property made the
process hold that many descriptors (`>=` to `==`, or FD_SETSIZE 1025, survived; issue 9).
Caught by: S12 (`test_s10_s12_connections_past_fd_setsize`: the sessions from before stop
echoing after the connect, and the loop thread died of ValueError).
"""

from __future__ import annotations

import socket
import time
from functools import partial

from impls._core import CloseReason
from impls.select_ import ACCEPTS_PER_EVENT, SelectServer


class FdSetsizeUncheckedServer(SelectServer):
    def _on_acceptable(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                conn, addr = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE: back off, as the reference model does
                if self._backoff.failed(exc.errno, time.monotonic()):
                    return
                continue
            conn.setblocking(False)  # BUG: conn.fileno() may be >= FD_SETSIZE
            with self._lock:
                s = self._table.add(partial(self._new_session, conn=conn, addr=addr))
            self._by_sock[s.sock] = s
            assert self._handler is not None
            ok = self._call(self._handler.on_connect, s.id, s.peer)
            with self._lock:
                s.life.connected()
                if not ok:
                    self._close(s, CloseReason.HANDLER_ERROR)


make_server = FdSetsizeUncheckedServer
