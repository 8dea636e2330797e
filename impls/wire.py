"""A program that speaks the wire protocol, wrapping any in-process implementation.

    python -m impls.wire --impl=epoll
    pytest conformance --impl='exec:python -m impls.wire --impl=epoll'

It is the reference for writing such a program (docs/wire-protocol.md), in the order a
program meets the protocol:

1. Write HELLO on stdout at once, before reading anything. stdout carries frames only, so
   `print()` is pointed at stderr, which is free for logs.
2. Read commands from stdin. START builds the server from the ServerConfig in the frame and
   answers STARTED with the port once it listens; SEND and DISCONNECT answer RESULT; STOP
   stops (every session is released, so every RELEASE is written) and then answers RESULT 1.
   EOF on stdin: stop and exit 0.
3. Events are written by whichever thread runs the callback, each frame whole under one lock.

Ordering: a command's result must be written before any event it causes (DISCONNECT's RESULT
before the RELEASE). The main thread holds the write lock while it makes the call and writes
the result, so an event the call caused waits for the lock and comes after. STOP is the
exception: stop() waits for the I/O threads, which write RELEASE frames under that lock, so
it runs without it -- and its RESULT comes after them anyway.

The wrapped model calls its application synchronously: it reads on from a socket only after
on_recv returned, so a reply sent from inside on_recv is queued before the peer's FIN is seen
(S5, S13). To keep that, each callback here writes its event and then waits for the suite's
answer for that id: RETURNED (the suite's callback returned) or CALLBACK_FAILED (it raised;
the callback here raises too, so the model ends that session its own way, S12). A native
program need not wait: it may run on and only hold back the close after a FIN until the
RETURNED of every earlier event of that session came. Those two answers are read by a thread
of their own (started before HELLO, so the thread count the suite takes then includes it),
because the main thread may be inside stop(), which waits for the callbacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import queue
import sys
import threading

from conformance import _wire as wire
from conformance.api import ServerConfig, ServerFactory, SessionServer

__all__ = ["main"]


class CallbackFailed(Exception):
    """The suite's callback for this event raised (CALLBACK_FAILED)."""


class Channel:
    """The program's side of the control channel: frames out on fd 1 under one lock; the
    suite's answers to events (RETURNED, CALLBACK_FAILED) matched to the callback waiting."""

    def __init__(self) -> None:
        self.write_lock = threading.Lock()
        self._out = 1
        self._lock = threading.Lock()
        # session id -> the callback waiting for the suite's answer: at most one per id,
        # as a model never overlaps the callbacks of one session (S2).
        self._waiting: dict[int, tuple[threading.Event, list[bool]]] = {}
        self.closed = False  # EOF on stdin: nobody will answer

    def write(self, frame: wire.Frame) -> None:
        with self.write_lock:
            self.write_locked(frame)

    def write_locked(self, frame: wire.Frame) -> None:
        """Write `frame` whole; the caller holds `write_lock`."""
        data = memoryview(wire.encode(frame))
        while data:
            data = data[os.write(self._out, data):]

    def event(self, frame: wire.Connect | wire.Recv) -> None:
        """Write an event and wait until the suite's callback for it returned; raise
        CallbackFailed if it raised."""
        done, outcome = threading.Event(), [True]
        with self._lock:
            if self.closed:
                return
            self._waiting[frame.session_id] = (done, outcome)
        self.write(frame)
        done.wait()
        if not outcome[0]:
            raise CallbackFailed(f"the suite's callback for session {frame.session_id} raised")

    def answer(self, session_id: int, returned: bool) -> None:
        with self._lock:
            waiter = self._waiting.pop(session_id, None)
        if waiter is not None:
            waiter[1][0] = returned
            waiter[0].set()

    def close(self) -> None:
        """EOF: release every waiting callback."""
        with self._lock:
            self.closed = True
            waiting, self._waiting = list(self._waiting.values()), {}
        for done, _ in waiting:
            done.set()


class Events:
    """The SessionHandler the wrapped server calls: each callback becomes an event frame."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def on_connect(self, session_id: int, peer: tuple[str, int]) -> None:
        self.channel.event(wire.Connect(session_id, int(peer[1]), str(peer[0])))

    def on_recv(self, session_id: int, data: bytes) -> None:
        self.channel.event(wire.Recv(session_id, bytes(data)))

    def on_release(self, session_id: int) -> None:
        self.channel.write(wire.Release(session_id))


def read_commands(channel: Channel, commands: queue.SimpleQueue[wire.Frame | None]) -> None:
    """The stdin thread: answers to events go to the waiting callback at once; every other
    command, in order, to the main thread. None at EOF (or garbage: the suite is broken)."""
    reader = wire.FrameReader(sys.stdin.buffer.read)
    try:
        while (frame := reader.next()) is not None:
            if isinstance(frame, wire.Returned | wire.CallbackFailed):
                channel.answer(frame.session_id, isinstance(frame, wire.Returned))
            else:
                commands.put(frame)
    except wire.WireError as exc:
        print(f"impls.wire: the suite sent bytes that are not a frame: {exc}", file=sys.stderr)
    finally:
        channel.close()
        commands.put(None)


def load(impl: str) -> ServerFactory:
    """A built-in's name (`epoll`) or `package.module:factory`. Not the suite's loader: that
    one also searches entry points, which costs every server of a run a tenth of a second
    of start-up (importlib.metadata)."""
    from impls import BUILTINS

    module, _, attr = BUILTINS.get(impl, impl).partition(":")
    factory: ServerFactory = getattr(importlib.import_module(module), attr)
    return factory


def serve(impl: str, channel: Channel,
          commands: queue.SimpleQueue[wire.Frame | None]) -> int:
    """Carry out commands until EOF; the exit status."""
    factory = load(impl)
    server: SessionServer | None = None
    stopped = False
    while (frame := commands.get()) is not None:
        if isinstance(frame, wire.Start):
            if frame.version != wire.VERSION:
                channel.write(wire.Failed(frame.tag, f"this program speaks wire protocol "
                                          f"version {wire.VERSION}, not {frame.version}"))
                return 2
            config = ServerConfig(send_queue_limit=frame.send_queue_limit,
                                  workers=frame.workers, linger=frame.linger_ms / 1000)
            try:
                server = factory(config)
                with channel.write_lock:  # STARTED before any CONNECT
                    _, port = server.start(Events(channel), frame.host, frame.port)
                    channel.write_locked(wire.Started(frame.tag, int(port)))
            except Exception as exc:
                channel.write(wire.Failed(frame.tag, f"start() raised {type(exc).__name__}: "
                                          f"{exc}"))
        elif isinstance(frame, wire.Send):
            with channel.write_lock:
                ok = server is not None and not stopped and server.send(frame.session_id,
                                                                         frame.data)
                channel.write_locked(wire.Result(frame.tag, int(ok)))
        elif isinstance(frame, wire.Disconnect):
            with channel.write_lock:
                ok = server is not None and not stopped and server.disconnect(frame.session_id)
                channel.write_locked(wire.Result(frame.tag, int(ok)))
        elif isinstance(frame, wire.Stop):
            if server is not None and not stopped:
                server.stop()  # not under the lock: its RELEASEs take it
            stopped = True
            channel.write(wire.Result(frame.tag, 1))
        else:
            print(f"impls.wire: ignoring {frame}, a frame only programs send", file=sys.stderr)
    if server is not None and not stopped:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impls.wire", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="epoll",
                        help="the in-process implementation to wrap, as --impl names it "
                        "(default: epoll)")
    args = parser.parse_args(argv)
    channel = Channel()
    # Frames only on stdout: anything printed goes to stderr.
    sys.stdout = sys.stderr
    commands: queue.SimpleQueue[wire.Frame | None] = queue.SimpleQueue()
    threading.Thread(target=read_commands, args=(channel, commands), name="wire-stdin",
                     daemon=True).start()
    channel.write(wire.Hello(wire.VERSION, f"impls.wire --impl={args.impl}"))
    return serve(args.impl, channel, commands)


if __name__ == "__main__":
    sys.exit(main())
