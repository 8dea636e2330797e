"""The Session contract: what an I/O-model implementation promises its application.

An implementation (a `SessionServer`) accepts TCP connections, gives each one a *session id*,
and moves bytes between the application (a `SessionHandler`) and the peer. The application
never sees a socket: it sees ids, callbacks and two calls, `send()` and `disconnect()`.

The clauses S1-S13 below are normative; `docs/contract.md` states each one at length, with its
edge cases and links to the tests that check it. Every method names the clauses it is bound by.

- S1 identity: ids are ints in [0, 2**64), never given to two sessions in one server's life.
- S2 lifecycle: per id, on_connect, then on_recv*, then on_release exactly once; callbacks for
  one id never overlap in time; nothing names an id after its on_release returned.
- S3 inbound stream: on_recv data concatenates to exactly what the peer sent; never empty.
- S4 outbound stream: bytes of send() calls that returned True reach the peer whole, in order.
- S5 zero-byte recv: a peer's FIN releases the session in bounded time, after all inbound data
  was delivered and every accepted byte was flushed.
- S6 would-block: a peer that stops reading never blocks send(), other sessions or the CPU.
- S7 bounded queue: send() returns False rather than queue past `send_queue_limit`.
- S8 stale ids and late completions: unknown, closing or released ids land nowhere; I/O in
  flight when a session ends never touches another session.
- S9 disconnect: flush, then FIN (or abort after `linger`), then on_release exactly once.
- S10 accept: bursts of connects are all accepted, also while other sessions are busy; the
  listen backlog holds `LISTEN_BACKLOG` (100) pending connections.
- S11 stop: releases every session, closes every socket, ends every thread; idempotent.
- S12 faults: a peer reset or a raising callback ends at most that one session.
- S13 re-entrancy: send() and disconnect() work from any callback and any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ServerConfig", "ServerFactory", "SessionHandler", "SessionServer"]


@dataclass(frozen=True)
class ServerConfig:
    """How the suite configures an implementation. Implementations ignore what they do not use.

    Attributes:
        send_queue_limit: bytes one session may have queued: accepted by send() and not yet
            handed to the kernel (S7). Kernel socket buffers come on top of it.
            0 is allowed: every non-empty send() is refused (it never means "no limit").
        workers: worker threads, for models that use a pool (IOCP workers, epoll loops).
        linger: seconds a graceful close (S5, S9, S11) may wait for the queued bytes to be
            flushed before it aborts the connection.
    """

    send_queue_limit: int = 1 << 20
    workers: int = 2
    linger: float = 2.0


@runtime_checkable
class SessionHandler(Protocol):
    """The application. The suite supplies one that records every call.

    Callbacks may run on any thread the implementation chooses, but callbacks for one session
    id never overlap in time (S2). A callback may call `SessionServer.send` and
    `SessionServer.disconnect` for any id (S13). If a callback raises, the implementation ends
    at most that session and goes on serving the others (S12).
    """

    def on_connect(self, session_id: int, peer: tuple[str, int]) -> None:
        """A connection was accepted and given `session_id` (S1, S2).

        `peer` is the remote address as (host, port), as getpeername() gives it: host a
        string, e.g. ('127.0.0.1', 50522) (S10). This is the first callback for the id.
        If it raises, the session is ended and `on_release` is still owed to it (S12).
        """

    def on_recv(self, session_id: int, data: bytes) -> None:
        """The peer sent `data` (S3). Never called with empty data: a zero-byte recv means the
        peer closed, and it is reported by `on_release`, not here (S5).

        `data` is a `bytes` object (a subclass of bytes will do): immutable, so the
        application may keep it, and it is the same value for ever. Never a memoryview or
        bytearray of a receive buffer the implementation goes on using (S3).
        """

    def on_release(self, session_id: int) -> None:
        """The session is over: called exactly once, last, after the socket was closed (S2).

        From inside it, send() and disconnect() on this id return False (S8).
        """


@runtime_checkable
class SessionServer(Protocol):
    """An I/O-model implementation. The four methods, in the order a session meets them."""

    def start(
        self, handler: SessionHandler, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, int]:
        """Bind, listen and start serving; return the address actually bound.

        `port=0` asks the OS for any free port. Returns once connections can be accepted.
        Called once per server object.

        The listen backlog must hold at least `LISTEN_BACKLOG` (100) pending connections
        (S10): the suite connects bursts of up to 100 while the server is busy inside a
        callback, and they wait in the backlog until it accepts again. With a smaller one,
        the connects beyond it time out, and S10 fails naming the backlog. `listen()` with
        `socket.SOMAXCONN` (the kernel caps it at net.core.somaxconn) is plenty.
        """
        ...

    def send(self, session_id: int, data: bytes) -> bool:
        """Queue `data` for the peer of `session_id`; never blocks on the network (S4, S6, S7).

        Returns:
            True if every byte of `data` was accepted: it will reach the peer after the bytes
            of every earlier accepted call, contiguous, unless the connection breaks (S4).
            `send(id, b"")` on a live session returns True and queues nothing.

            False, having queued nothing of this call, if the id is unknown, closing or
            released (S8, S9, S11), or if accepting `data` would put the bytes queued for this
            session over `ServerConfig.send_queue_limit` (S7). A call that brings the queue to
            exactly the limit succeeds.

        May be called from any thread and from inside any callback (S13).
        """
        ...

    def disconnect(self, session_id: int) -> bool:
        """Close the session gracefully: flush what was accepted, then FIN (S9).

        Returns True once for a live session, False for an unknown, closing or released id
        (S8). After it returns True, send(id) returns False; `on_release(id)` follows exactly
        once, when the flush is done or `linger` expired (then the connection is aborted).
        May be called from any thread and from inside any callback (S13).
        """
        ...

    def stop(self) -> None:
        """Release every live session (on_release for each before returning), close the
        listener and every socket, and end every thread the server started (S11).

        Idempotent. Afterwards send() and disconnect() return False. The owner's call: calling
        it from inside a callback may raise RuntimeError.
        """
        ...


ServerFactory = Callable[[ServerConfig], SessionServer]
"""Builds an unstarted server from a config. `--impl=package.module:factory` names one."""

LISTEN_BACKLOG = 100
"""Pending connections the listen backlog must hold (S10): the largest burst the suite
connects while the server is busy and accepts nothing (`SessionServer.start`)."""

INTERFACE_METHODS: tuple[str, ...] = ("start", "send", "disconnect", "stop")
"""The methods a `SessionServer` must have; the loader names the missing ones."""
