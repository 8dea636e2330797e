"""Mutant S11 (iocp): the worker drops cancelled completions -- IOCount never reaches zero.

The bug:

    while (GetQueuedCompletionStatus(port, &n, &key, &ov, INFINITE) || ov != NULL) {
        if (GetLastError() == ERROR_OPERATION_ABORTED)
            continue;   // "we cancelled it ourselves: nothing to do"
        ...
    }

CancelIoEx does not make an operation vanish: the cancelled WSARecv (or AcceptEx) still
completes, once, with ERROR_OPERATION_ABORTED, and that completion is what gives back the
operation's IOCount. Dropped here, the count of a closing session never reaches zero, so it is
never released: `disconnect()` is followed by no `on_release`, and `stop()`, which cancels
every operation and waits for the last completion (as it must), never returns. Caught by:
S11 (stop() did not return within its deadline; the server is wedged, and the run reports it
as a verdict instead of hanging), and S9 where a property disconnects first.
"""

from __future__ import annotations

from impls._completion_port import ECANCELED, OpKind
from impls.iocp import IocpServer, Key, Linger, Session


class CancelNeverCompletesServer(IocpServer):
    def _worker(self) -> None:
        assert self._port is not None
        while True:
            packet = self._port.get()
            assert packet is not None
            if packet.error == ECANCELED:
                continue  # BUG: the cancelled operation's completion gives back nothing
            key = packet.key
            if key is Key.QUIT:
                return
            if key is Key.LISTENER:
                self._on_accept_done(packet)
            elif isinstance(key, Linger):
                self._on_linger_expired(key.session_id)
            elif isinstance(key, Session):
                assert packet.overlapped is not None
                if packet.overlapped.kind is OpKind.RECV:
                    self._on_recv_done(key, packet)
                else:
                    self._on_send_done(key, packet)
            else:
                raise AssertionError(f"completion with an unknown key: {packet}")


make_server = CancelNeverCompletesServer
