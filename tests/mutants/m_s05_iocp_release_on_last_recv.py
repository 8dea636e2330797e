"""Mutant S5 (iocp): the zero-byte recv closes the socket while a WSASend is still pending.

The bug:

    if (transferred == 0 && op == RECV) {   // the peer closed: the session's last receive
        closesocket(s->sock);               // "nothing more will come: close it now"
        return;                             // (the WSASend in flight is cancelled)
    }

The zero-byte completion is the last receive, but not the session's last operation: the
answer the application queued is still being written, a WSASend in flight and the rest in the
send queue. closesocket cancels the pending send and closes gracefully, so the peer, which
half-closed and is still reading, gets what the kernel had buffered and then EOF: the end of
the answer is silently cut off. The IOCount is the fix -- the session ends when every
operation has completed, not when the receive side has. Caught by: S5
(`test_s05_fin_mid_transfer_still_flushes_it`: the peer reads EOF megabytes early).
"""

from __future__ import annotations

from impls._completion_port import Packet
from impls._core import CloseReason
from impls.iocp import IocpServer, Session


class ReleaseOnLastRecvServer(IocpServer):
    def _on_recv_done(self, s: Session, packet: Packet) -> None:
        if packet.error or packet.nbytes:
            super()._on_recv_done(s, packet)
            return
        assert self._port is not None
        with s.lock:
            s.recv_ov = None
            self._close(s, CloseReason.PEER_EOF)
            # BUG: the peer is gone, so close now -- with a WSASend still in flight.
            s.life.expire()  # a closed socket takes no more WSASends: the flush is over
            self._port.cancel(s.sock)
            s.sock.close()
        self._finished(s)


make_server = ReleaseOnLastRecvServer
