"""Mutant S12 (iocp): the pending WSARecv is not counted in IOCount -- release with I/O pending.

The bug:

    void RecvPost(Session* s) {
        WSARecv(s->sock, s->wsabuf, 2, NULL, &flags, &s->recvOverlapped, NULL);
        // "the recv is always pending, so it need not be counted" -- no InterlockedIncrement
    }

The IOCount reaches zero while the WSARecv is still in the kernel, so the session is
released, and the cancelled (or completed) recv arrives afterwards for a session that no
longer exists: in C++ the memory already belongs to the next player; here the late
completion runs the release bookkeeping of a dead session a second time, and the worker that
took it dies -- one session's late completion stops the server for everyone. Caught by: S12
(a thread of the server died), with the symptom that comes first -- usually S5 or S11,
sessions that never end because no worker is left to end them.
"""

from __future__ import annotations

from impls._completion_port import OpKind, Overlapped
from impls.iocp import IocpServer, Session


class RecvNotCountedServer(IocpServer):
    def _recv_post(self, s: Session) -> None:
        assert self._port is not None
        if s.life.closing or s.recv_ov is not None:
            return
        s.recv_ov = Overlapped(OpKind.RECV, s.sock, s.ring.free_segments())
        self._port.issue(s.recv_ov)  # BUG: no s.io.started() for the recv in flight


make_server = RecvNotCountedServer
