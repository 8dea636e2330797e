"""Mutant S2 (select): a recv that would block is taken for the peer's close.

The bug:

    int n = recv(sock, buf, len, 0);
    if (n <= 0) { Disconnect(session); return; }   // -1/WSAEWOULDBLOCK lumped in with 0

select() said the socket was readable, so the author never expected EAGAIN -- but select may
wake spuriously (the man page's BUGS section: a segment with a bad checksum is discarded
after the wakeup), and then a live player is disconnected. On loopback it never happens; the
suite makes it happen with fault injection (a would-block at a chosen recv). Caught by: S2
(a session ends only for a reason of its own: here it ended with no FIN, no RST, no
disconnect() and no stop()), usually with S3/S4 (the rest of its stream is lost).
"""

from __future__ import annotations

from impls._core import CloseReason
from impls.select_ import SelectServer, Session


class WouldBlockAsCloseServer(SelectServer):
    def _on_readable(self, s: Session, buf: bytearray) -> None:
        assert self._handler is not None
        try:
            n = s.sock.recv_into(buf)
        except BlockingIOError:
            n = 0  # BUG: "recv <= 0: the peer is gone"
        except OSError:
            with self._lock:
                self._close(s, CloseReason.RESET)
            return
        if n == 0:
            s.read_eof = True
            with self._lock:
                self._close(s, CloseReason.PEER_EOF)
            return
        if not self._call(self._handler.on_recv, s.id, bytes(buf[:n])):
            with self._lock:
                self._close(s, CloseReason.HANDLER_ERROR)


make_server = WouldBlockAsCloseServer
