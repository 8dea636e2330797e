"""Socket helpers every readiness and blocking model needs, written once.

Only what is the same in every model lives here; anything that makes a model that model
(how it waits, who writes, who closes) stays in the model's own module.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from impls._core.accept import ACCEPT_RETRY  # the back-off is the core's; importable here too

if TYPE_CHECKING:
    import trio

    from conformance.faults import FaultInjector

__all__ = ["ACCEPT_BACKLOG", "ACCEPT_RETRY", "FaultOptIn", "abort_on_close", "listen",
           "quietly"]

# A burst of simultaneous connects waits in the kernel's backlog while the server catches
# up; a small backlog would turn the burst into SYN retries seconds later (S10). The kernel
# caps it at net.core.somaxconn (4096 on current Linux).
ACCEPT_BACKLOG = 1024
# SO_LINGER on with a zero timeout: close() drops unsent data and sends RST -- an abort (S9).
_ABORT = struct.pack("ii", 1, 0)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR, as create_server sets it on POSIX)."""
    return socket.create_server((host, port), backlog=ACCEPT_BACKLOG)


class _Socket(Protocol):
    def setsockopt(self, level: int, option: int, value: bytes, /) -> None: ...


def abort_on_close(sock: _Socket) -> None:
    """Make the next close() an abort: RST instead of FIN, queued bytes dropped."""
    quietly(sock.setsockopt, socket.SOL_SOCKET, socket.SO_LINGER, _ABORT)


class FaultOptIn:
    """The suite's fault injection, opted into (`conformance.faults`): testing plumbing, not
    part of any model. Without `inject_faults()`, `session_socket`, `session_stream`,
    `listener_socket` and `trio_listener` return what they are given."""

    _faults: FaultInjector | None = None

    def inject_faults(self, faults: FaultInjector) -> None:
        """Called by the suite before start(): session sockets will meet its faults."""
        self._faults = faults

    def session_socket(self, sock: socket.socket, session_id: int, *,
                       edge_triggered: bool = False) -> socket.socket:
        """`sock`, or -- under fault injection -- its faulty stand-in (`sock` is then detached:
        use only the returned socket)."""
        if self._faults is None:
            return sock
        return self._faults.wrap_socket(sock, session_id, edge_triggered=edge_triggered)

    def session_stream(self, stream: trio.SocketStream,
                       session_id: int) -> trio.abc.HalfCloseableStream:
        """The same for a Trio stream (Trio bypasses a wrapped socket's methods)."""
        if self._faults is None:
            return stream
        return self._faults.wrap_stream(stream, session_id)

    def listener_socket(self, sock: socket.socket) -> socket.socket:
        """The listening socket, or -- under fault injection -- its stand-in whose accept()
        may fail with EMFILE or ECONNABORTED (`sock` is then detached)."""
        if self._faults is None:
            return sock
        return self._faults.wrap_listener(sock)

    def trio_listener(self, listener: trio.SocketListener
                      ) -> trio.abc.Listener[trio.SocketStream]:
        """The same for a Trio listener."""
        if self._faults is None:
            return listener
        return self._faults.wrap_trio_listener(listener)


def quietly(fn: Callable[..., object], *args: object) -> None:
    """Best effort: the connection may already be gone, which is what we wanted anyway."""
    try:
        fn(*args)
    except OSError:
        pass
