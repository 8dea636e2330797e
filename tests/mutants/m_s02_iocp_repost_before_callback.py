"""Mutant S2 (iocp): RecvPost is called before on_recv, "so the kernel can already fill the
next buffer".

The bug:

    on WSARecv completion:
        RecvPost(s)                      # re-post first, for throughput
        handler.on_recv(sid, data)       # ...while the next completion may already be
                                         #    running on another worker

With a pool of workers, the next completion of the same socket is dequeued by another
worker while the first is still inside on_recv: two callbacks of one session run at once,
and the application's per-session state is corrupted. Caught by: S2 (callbacks for one id
never overlap).
"""

from __future__ import annotations

from impls._completion_port import ECANCELED, Packet
from impls._core import CloseReason
from impls.iocp import IocpServer, Session


class EagerRepostServer(IocpServer):
    def _on_recv_done(self, s: Session, packet: Packet) -> None:
        assert self._handler is not None
        data = b""
        with s.lock:
            s.recv_ov = None
            if packet.error and packet.error != ECANCELED:
                self._close(s, CloseReason.RESET)
            elif not packet.error and packet.nbytes == 0:
                self._close(s, CloseReason.PEER_EOF)
            elif not packet.error:
                s.ring.commit(packet.nbytes)
                data = s.ring.take()
                self._recv_post(s)  # BUG: before on_recv, not after
        if data and not self._call(self._handler.on_recv, s.id, data):
            with s.lock:
                self._close(s, CloseReason.HANDLER_ERROR)
        self._finished(s)


make_server = EagerRepostServer
