"""Mutant S4 (iocp): every send() posts its own WSASend -- several in flight per session.

The bug:

    def send(self, sid, data):
        WSASend(s.sock, [data], &ov)     # "the kernel queues them for us"
    on completion(n < len): WSASend(rest)  # ...after the sends posted meanwhile

Each operation may complete short, on any worker; the rest of one message is re-posted
behind messages that were posted after it, and the peer receives them interleaved. That is
why SendPost keeps one send in flight and a queue behind it. Caught by: S4 (each call's bytes
contiguous, in call order).
"""

from __future__ import annotations

from impls._completion_port import ECANCELED, OpKind, Overlapped, Packet
from impls._core import CloseReason
from impls.iocp import IocpServer, Session


class ManySendsServer(IocpServer):
    def send(self, session_id: int, data: bytes) -> bool:
        s = self._lookup(session_id)
        if s is None:
            return False
        with s.lock:
            if not s.life.accepts_calls or len(data) > s.queue.limit:
                return False
            if data:
                self._post_one(s, memoryview(bytes(data)))
            return True

    def _post_one(self, s: Session, view: memoryview) -> None:
        assert self._port is not None
        s.io.started()
        self._port.issue(Overlapped(OpKind.SEND, s.sock, [view]))  # BUG: no one-in-flight

    def _on_send_done(self, s: Session, packet: Packet) -> None:
        ov = packet.overlapped
        assert ov is not None
        with s.lock:
            if packet.error and packet.error != ECANCELED:
                self._close(s, CloseReason.RESET)
            elif not packet.error and packet.nbytes < len(ov.buffers[0]):
                self._post_one(s, ov.buffers[0][packet.nbytes :])  # behind later sends
        self._finished(s)


make_server = ManySendsServer
