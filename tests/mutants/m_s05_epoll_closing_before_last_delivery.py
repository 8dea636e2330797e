"""Mutant S5 (epoll): the read loop marks the session closing before it delivers what it read.

The bug:

    for (;;) {                             // edge-triggered: drain until EAGAIN
        n = recv(fd, buf + len, cap - len, 0);
        if (n == 0) { s->closing = true; break; }   // the peer closed
        if (n < 0) break;                  // EAGAIN: drained
        len += n;
    }
    deliver(s, buf, len);                  // then hand everything to the application

Draining first and delivering afterwards looks tidy, but when the last data and the FIN come
in one turn, the session is already closing while the application handles its last
message: send() from inside that on_recv returns False, so the answer to the peer's last
request -- a client that asks, half-closes and waits, as tools and bots do -- is never
sent. The data before the FIN belongs to a live session. Caught by: S5
(`test_s05_fin_releases_after_delivery_and_flush`: send() from the last on_recv -> False).
"""

from __future__ import annotations

from impls._core import CloseReason
from impls.epoll_et import READS_PER_TURN, EpollServer, Session


class ClosingBeforeLastDeliveryServer(EpollServer):
    def _on_readable(self, s: Session, buf: bytearray) -> None:
        assert self._handler is not None
        chunks: list[bytes] = []
        drained = False
        for _ in range(READS_PER_TURN):
            if s.read_eof or s.sock.fileno() < 0:
                drained = True
                break
            try:
                n = s.sock.recv_into(buf)
            except BlockingIOError:
                drained = True
                break
            except OSError:
                with self._lock:
                    self._close(s, CloseReason.RESET)
                drained = True
                break
            if n == 0:
                s.read_eof = True
                with self._lock:
                    self._close(s, CloseReason.PEER_EOF)  # BUG: before `chunks` are delivered
                drained = True
                break
            chunks.append(bytes(buf[:n]))
        for chunk in chunks:
            if not self._call(self._handler.on_recv, s.id, chunk):
                with self._lock:
                    self._close(s, CloseReason.HANDLER_ERROR)
                return
        if not drained:
            s.loop.more_to_read.add(s)


make_server = ClosingBeforeLastDeliveryServer
