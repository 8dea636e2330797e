"""The notes' assignment, on any implementation: an echo server written once, against Session.

    python -m impls.echo --impl=epoll [--host 127.0.0.1] [--port 0] [--workers N]

The application never sees a socket: `on_recv(id, data)` -> `send(id, data)`. So the same
twenty lines run on every model the suite can name -- the five built-ins, an installed
entry point, or your own `package.module:factory` -- through the suite's own resolver
(`conformance._loading.resolve`). `python -m conformance.bench` measures servers started
this way.

It prints the address it bound, then serves until Ctrl-C (SIGINT) or SIGTERM; then it calls
stop(), checks that every session it saw was released (S11), and exits 0. A stop() that does
not return within `STOP_DEADLINE`, a session left unreleased, or a thread left running is an
implementation's failure, and so is a start() that raises or hangs: it says which, and exits 1
rather than hang. A name that resolves to nothing, a factory that does not build a server, or
an address it cannot listen on, exits 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from conformance._calls import bounded_call
from conformance._loading import ImplError, bound_address, check_interface, resolve
from conformance.api import SessionServer

__all__ = ["EchoApp", "main"]

# How long stop() may take. Generous: a model with a thousand sessions releases each one,
# and a thread-per-session model joins a thread or two per session, on a loaded machine.
STOP_DEADLINE = 30.0
# How long start() may take: bind, listen, start the model's threads.
START_DEADLINE = 30.0
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class EchoApp:
    """The application: whatever a session receives, it sends back."""

    def __init__(self) -> None:
        self.server: SessionServer | None = None
        self._lock = threading.Lock()  # callbacks of different sessions may run on many threads
        self.live: set[int] = set()
        self.served = 0
        self.overflowed = 0

    def on_connect(self, session_id: int, peer: tuple[str, int]) -> None:
        with self._lock:
            self.live.add(session_id)
            self.served += 1

    def on_recv(self, session_id: int, data: bytes) -> None:
        assert self.server is not None
        if not self.server.send(session_id, data):
            # S7: the peer stopped reading its echoes and the queue is at its limit. Dropping
            # these bytes would make the echo lie; closing tells the peer something is wrong.
            with self._lock:
                self.overflowed += 1
            self.server.disconnect(session_id)

    def on_release(self, session_id: int) -> None:
        with self._lock:
            self.live.discard(session_id)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m impls.echo",
        description="An echo server on any implementation the conformance suite can name.",
    )
    parser.add_argument("--impl", required=True,
                        help="a built-in (blocking, select, epoll, iocp, trio), an entry "
                             "point, or package.module:factory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (the default)")
    parser.add_argument("--workers", type=int, default=1,
                        help="ServerConfig.workers, for models with a pool of loops or "
                             "workers (default 1: on CPython one thread runs Python at a "
                             "time, so more loops only add hand-offs; the suite runs 2)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        impl = resolve(args.impl)
        check_interface(impl)  # a factory or server that is not one: say so, as the suite does
    except ImplError as exc:
        _say(str(exc), err=True)
        return 2
    if args.workers < 1:
        _say(f"--workers={args.workers}: give 1 or more", err=True)
        return 2
    config = impl.config(workers=args.workers)
    app = EchoApp()
    server = app.server = impl.build(config)
    # Blocked before start(): the server's threads inherit the mask, so SIGINT and SIGTERM
    # reach only the sigwait() below, never a model thread in the middle of a callback. One
    # that arrives during start() waits for sigwait(), and start() has a deadline.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    outcome, stuck = bounded_call(lambda: server.start(app, args.host, args.port),
                                  START_DEADLINE)
    if stuck is not None:
        _say(f"start() did not return within {START_DEADLINE:.0f} s", err=True)
        os._exit(1)  # its thread would keep the interpreter from exiting: never hang
    if isinstance(outcome, BaseException):
        if isinstance(outcome, OSError):
            _say(f"cannot listen on {args.host}:{args.port}: {outcome.strerror or outcome}",
                 err=True)
        else:
            _say(f"start() raised {type(outcome).__name__}: {outcome}", err=True)
        bounded_call(server.stop, STOP_DEADLINE)
        return 2 if isinstance(outcome, OSError) else 1
    try:
        host, port = bound_address(impl.name, outcome)
    except ImplError as exc:
        _say(str(exc), err=True)
        _stop(server, app, "a bad address")
        return 2
    _say(f"{impl.name} echo server listening on {host}:{port} (pid {os.getpid()}); "
         "Ctrl-C or SIGTERM stops it")
    received = signal.sigwait(_STOP_SIGNALS)
    return _stop(server, app, signal.Signals(received).name)


def _stop(server: SessionServer, app: EchoApp, why: str) -> int:
    before = [t for t in threading.enumerate() if t is not threading.current_thread()]
    outcome, stuck = bounded_call(server.stop, STOP_DEADLINE)
    if stuck is not None:
        _say(f"{why}: stop() did not return within {STOP_DEADLINE:.0f} s (S11)", err=True)
        os._exit(1)  # its threads would keep the interpreter from exiting: never hang
    if isinstance(outcome, BaseException):
        _say(f"{why}: stop() raised {type(outcome).__name__}: {outcome}", err=True)
        os._exit(1)
    left = [t.name for t in before if t.is_alive()]
    if app.live or left:
        what = []
        if app.live:
            what.append(f"sessions never released: {sorted(app.live)[:10]}")
        if left:
            what.append(f"threads still running: {', '.join(left)}")
        _say(f"{why}: stop() returned with {'; '.join(what)} (S11)", err=True)
        os._exit(1)
    note = f"; {app.overflowed} closed at the send-queue limit" if app.overflowed else ""
    _say(f"stopped on {why}: sessions served: {app.served}, every one released{note}")
    return 0


def _say(message: str, *, err: bool = False) -> None:
    print(f"impls.echo: {message}", file=sys.stderr if err else sys.stdout, flush=True)


if __name__ == "__main__":
    sys.exit(main())
