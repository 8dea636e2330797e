"""Mutant S3 (iocp): on_recv is handed a view of the receive ring, not a copy.

The bug:

    on WSARecv completion:
        ring.commit(transferred)
        handler.on_recv(sid, ring_view[head:head + n])   # "zero-copy: the data is right there"
        RecvPost(s)                                      # ...and the ring is lent out again

The ring is lent to the next WSARecv as soon as on_recv returns, and the kernel writes the
next bytes into it; once it wraps, it writes over the bytes the application was given. An
application that keeps what it received -- a message parser waiting for the rest of a packet,
a log, a queue for another thread -- finds them changed under it, long after on_recv
returned, and only on sessions that received more than the ring holds. Caught by: S3 (the
trace checker: on_recv was passed a memoryview, not bytes, and its bytes changed).
"""

from __future__ import annotations

from impls._completion_port import ECANCELED, Packet
from impls._core import CloseReason, RingBuffer
from impls.iocp import IocpServer, Session


def lend(ring: RingBuffer) -> bytes:
    """take(), but a view of the ring where the held bytes are in one piece."""
    start, end = ring._head, ring._head + len(ring)
    if end > ring.capacity:
        return ring.take()  # wrapped: two pieces, so join them after all
    view = ring._view[start:end]
    ring._head, ring._size = end % ring.capacity, 0
    return view  # type: ignore[return-value]  # BUG: the ring's memory, not a copy


class LendsRecvBufferServer(IocpServer):
    def _on_recv_done(self, s: Session, packet: Packet) -> None:
        assert self._handler is not None
        data = b""
        with s.lock:
            s.recv_ov = None
            if packet.error == ECANCELED:
                pass
            elif packet.error:
                self._close(s, CloseReason.RESET)
            elif packet.nbytes == 0:
                self._close(s, CloseReason.PEER_EOF)
            else:
                s.ring.commit(packet.nbytes)
                data = lend(s.ring)
        if data:
            ok = self._call(self._handler.on_recv, s.id, data)
            with s.lock:
                if not ok:
                    self._close(s, CloseReason.HANDLER_ERROR)
                self._recv_post(s)
        self._finished(s)


make_server = LendsRecvBufferServer
