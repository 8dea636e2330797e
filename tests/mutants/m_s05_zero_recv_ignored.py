"""Mutant S5 (blocking): recv() returning 0 is taken for "no data yet".

The bug:

    n = sock.recv_into(buf)
    if n == 0:
        continue                         # "nothing arrived, try again"

After the peer's FIN every recv returns 0 at once: the reader polls forever, and the session
-- its socket, its threads, its slot -- is never released. Caught by: S5 (on_release after
the FIN).
"""

from __future__ import annotations

import threading

from impls._core import CloseReason
from impls.blocking import BlockingServer, Session

POLL = 0.05  # the mutant waits between useless recv() calls instead of spinning a core


class ZeroRecvIgnoredServer(BlockingServer):
    def _serve(self, s: Session) -> None:
        assert self._handler is not None
        self._call(self._handler.on_connect, s.id, s.peer)
        with self._lock:
            s.life.connected()
        buf = bytearray(65536)
        while True:
            try:
                n = s.sock.recv_into(buf)
            except OSError:
                break
            if n == 0:  # BUG: the peer closed, but we keep asking
                with self._lock:
                    if s.life.closing:
                        break  # disconnect() and stop() still end it
                    s.wakeup.wait(POLL)
                continue
            self._call(self._handler.on_recv, s.id, bytes(buf[:n]))
        with self._lock:
            self._close(s, CloseReason.STOP)
        self._finish_closing(s)
        with self._lock:
            self._readers.discard(threading.current_thread())


make_server = ZeroRecvIgnoredServer
