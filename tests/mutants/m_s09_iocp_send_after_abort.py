"""Mutant S9 (iocp): SendPost does not look at whether the session was aborted.

The bug:

    def send_post(s):
        if s.send_in_flight or not s.queue:     # forgot: "or s.life.aborting"
            return
        WSASend(s.sock, s.queue.buffers(), ...)

The linger timer aborts a session whose peer does not read: CancelIoEx on the socket, RST on
close. But a send that had already *succeeded* is not cancelled -- its completion is on its
way (held back, or behind the timer in the port's queue). Its handler does what it always
does: count the bytes, then post the rest of the queue. That WSASend on the aborted socket
writes until the peer's window closes and then waits forever; the IOCount never reaches
zero, so the session is never released and stop() waits for it too. Only a completion that
arrives after the abort shows it: a linger shorter than the time a completion is held.
Caught by: S9 (`test_s09_disconnect_aborts_after_linger` with a short linger and held
completions: no on_release within linger plus slack).
"""

from __future__ import annotations

from impls._completion_port import OpKind, Overlapped
from impls.iocp import IocpServer, Session


class SendAfterAbortServer(IocpServer):
    def _send_post(self, s: Session) -> None:
        assert self._port is not None
        if s.send_ov is not None or not s.queue:  # BUG: an aborted session posts again
            return
        s.send_ov = Overlapped(OpKind.SEND, s.sock, s.queue.buffers())
        s.io.started()
        self._port.issue(s.send_ov)


make_server = SendAfterAbortServer
