"""Trio model: structured concurrency -- a task per session, in a nursery, on one thread.

Some facts about Trio
---------------------
Trio runs coroutines ("tasks") on one thread. A task that would block -- `receive_some()` on
an empty socket, `send_all()` into a full one -- is suspended, and Trio's own I/O loop (epoll
on Linux, IOCP on Windows) resumes it when the socket is ready. So the code *reads* like the
blocking model (a straight line per connection) but *runs* like the select model (one thread,
non-blocking sockets, a readiness loop), without either's bookkeeping:

- `await stream.send_all(data)` does the partial-send loop (S4) and the would-block wait (S6).
- `await stream.receive_some()` returns b"" if, and only if, the peer sent EOF (S5).
- Every task lives in a *nursery*; a nursery does not exit until its tasks have, and
  cancelling a scope cancels everything inside it. There are no stray tasks to leak (S11)
  and no callback can outlive its session: the session's task *is* its lifetime (S2).
- Cancellation is how you stop a blocked call: no shutdown() tricks, no self-pipe, no
  CancelIoEx -- `cancel_scope.cancel()`, and timeouts are `move_on_after(linger)` (S9).

What this means for our code
----------------------------
`trio.run` runs in a thread the server owns. The main task accepts; each connection gets a
task (`_serve`) with a nursery of its own. The session task reads (receive_some -> on_recv);
a writer task in the nursery sends (send_all), started when bytes are queued and none runs,
ended when the queue is empty. send() and disconnect() come from any thread: they update the
queue under a lock and poke the Trio thread with `TrioToken.run_sync_soon`, which never
blocks the caller -- also when the caller is a callback on the Trio thread (S13). Closing
cancels the reader; the nursery's exit is the wait for the flush, and the linger deadline on
the nursery's cancel scope bounds it (S9). stop() cancels the accept loop and closes every
session; trio.run returns when the nursery is empty, which is exactly "every session
released" (S11). When to FIN, abort or release is the core's decision (docs/core.md); the
writer task running is this model's IO outstanding.

Clauses this file works hardest for: S13 (crossing from other threads into Trio without
blocking), S9 (linger as a cancel scope). Everything else is Trio's job.

Sources:
- Trio docs: "Task spawning and cancellation"; "Introspecting and extending Trio with
  trio.lowlevel" -> "Trio tokens" (TrioToken.run_sync_soon); `ReceiveStream.receive_some`,
  `SocketStream.send_eof`.
- N. J. Smith, "Notes on structured concurrency, or: Go statement considered harmful".
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from conformance.api import ServerConfig, SessionHandler
from impls._core import SendQueue, SessionTable, accept_retry_delay, run_callback
from impls._core.lifecycle import CloseReason, Lifecycle, Seen, admit_send, advance, next_timeout
from impls._ending import Ending
from impls._sockets import ACCEPT_BACKLOG, FaultOptIn, abort_on_close, quietly

__all__ = ["TrioServer", "make_server"]

# receive_some(RECV_SIZE): at most this much per call.
RECV_SIZE = 64 * 1024
_STREAM_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


@dataclass(eq=False)
class Session:
    id: int
    stream: trio.abc.HalfCloseableStream
    sock: trio.socket.SocketType
    peer: tuple[str, int]
    queue: SendQueue
    life: Lifecycle = field(default_factory=Lifecycle)
    read_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    tasks: trio.Nursery | None = None  # the session's nursery, while it is open
    writing: bool = False  # a writer task is running (only the Trio thread looks)

    def __repr__(self) -> str:
        return f"<Session id={self.id} {self.life} {self.queue}>"


class TrioServer(FaultOptIn, Ending[Session]):
    """A Trio task per session. See the module docstring."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        # Guards the table, the queues and the lifecycles against calls from other threads;
        # never held across an `await` or while a callback runs.
        self._lock = threading.Lock()
        self._table: SessionTable[Session] = SessionTable()
        self._handler: SessionHandler | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._accept_scope = trio.CancelScope()
        self._started = threading.Event()
        self._bound: tuple[str, int] | BaseException = ("", 0)
        self._stopping = False

    def start(
        self, handler: SessionHandler, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, int]:
        self._handler = handler
        self._thread = threading.Thread(target=self._run, args=(host, port),
                                        name="trio-run", daemon=True)
        self._thread.start()
        self._started.wait()
        if isinstance(self._bound, BaseException):
            raise self._bound
        return self._bound

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            if not admit_send(s, data):
                return False  # S8: unknown/closing id; S7: over the limit
        self._poke(s)
        return True

    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            return s is not None and self._close(s, CloseReason.DISCONNECT)

    def stop(self) -> None:
        if self._thread is None:
            return  # never started
        if threading.current_thread() is self._thread:
            raise RuntimeError("stop() was called from inside a callback; call it from the owner")
        with self._lock:
            first, self._stopping = not self._stopping, True
        if first and self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._accept_scope.cancel)
        self._thread.join()  # trio.run returns when every session task has ended

    def _poke(self, s: Session) -> None:
        """Tell the Trio thread to look at `s` (new bytes, or closing). Never blocks."""
        if threading.current_thread() is self._thread:
            # Already on it -- send() from a callback, the echo server's case: look at `s`
            # now. run_sync_soon would cost a write to Trio's wakeup socket and a loop pass.
            self._wake(s)
            return
        assert self._token is not None
        with contextlib.suppress(trio.RunFinishedError):  # the server is gone; so is `s`
            self._token.run_sync_soon(self._wake, s)

    def _wake(self, s: Session) -> None:
        """On the Trio thread: flush what is queued, and stop the reader if the session closes."""
        self._start_writer(s)
        if s.life.closing:
            s.read_scope.cancel()

    def _start_writer(self, s: Session) -> None:
        """A writer task for the queued bytes, unless one runs (it takes new bytes too)."""
        if s.queue and not s.writing and s.tasks is not None:
            s.writing = True
            s.tasks.start_soon(self._write, s)

    # ---- the Trio thread

    def _run(self, host: str, port: int) -> None:
        try:
            trio.run(self._main, host, port)
        except BaseException as exc:
            if not self._started.is_set():
                self._bound = exc
                self._started.set()
            raise

    async def _main(self, host: str, port: int) -> None:
        self._token = trio.lowlevel.current_trio_token()
        listeners = await trio.open_tcp_listeners(port, host=host, backlog=ACCEPT_BACKLOG)
        self._bound = listeners[0].socket.getsockname()[:2]
        listener = self.trio_listener(listeners[0])
        self._started.set()
        async with trio.open_nursery() as sessions:
            with self._accept_scope:  # stop() cancels this
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as exc:  # EMFILE (Trio retries ECONNABORTED itself)
                        await trio.sleep(accept_retry_delay(exc.errno))
                        continue
                    sessions.start_soon(self._serve, stream)
            await listener.aclose()
            with self._lock:
                for s in self._table:
                    self._close(s, CloseReason.STOP)
        # The nursery has waited for every session task: everything is released (S11).

    # ---- one session: accept, read and write, release

    async def _serve(self, stream: trio.SocketStream) -> None:
        assert self._handler is not None
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:  # reset before we got here (ENOTCONN): never announced, nothing owed
            await stream.aclose()
            return
        with self._lock:
            s = self._table.add(lambda sid: Session(
                sid, self.session_stream(stream, sid), stream.socket, (host, port),
                SendQueue(self._config.send_queue_limit)))
            if self._stopping:  # started after stop() looked at the table
                self._close(s, CloseReason.STOP)
        ok = self._call(self._handler.on_connect, s.id, s.peer)
        with self._lock:
            if not ok:
                self._close(s, CloseReason.HANDLER_ERROR)
            s.life.connected()
        async with trio.open_nursery() as tasks:
            s.tasks = tasks
            self._start_writer(s)  # for a greeting from on_connect
            reason = await self._read(s)
            with self._lock:
                self._close(s, reason)
            # Closing, send() accepts nothing more: one writer takes what is queued, then no
            # writer is started again (so none after the nursery closed).
            self._start_writer(s)
            s.tasks = None
            self._await_flush(s, tasks)
        # The nursery waited for the writer: what was accepted is in the kernel, or the
        # linger deadline cancelled the writer.
        self._finish_closing(s)

    def _await_flush(self, s: Session, tasks: trio.Nursery) -> None:
        """A nursery exits once its tasks have: the writer, if one runs, flushes what was
        accepted. The linger deadline bounds how long (S9): the nursery's cancel scope's."""
        if not s.writing:
            return  # nothing to flush: the nursery exits at once
        timeout = next_timeout([s.life.wake_at], time.monotonic())
        if timeout is not None:
            tasks.cancel_scope.deadline = trio.current_time() + timeout

    async def _read(self, s: Session) -> CloseReason:
        """receive_some -> on_recv until EOF, a failure, or the session closes. The reader
        never sends, not even on_recv's answer: parked in a send_all to a peer that stopped
        reading, it would not see that peer's FIN (S5) -- the writer task waits instead."""
        assert self._handler is not None
        with s.read_scope:
            while not s.life.closing:
                try:
                    data = await s.stream.receive_some(RECV_SIZE)
                except _STREAM_GONE:
                    return CloseReason.RESET
                if not data:  # S5: b"" if, and only if, the peer sent EOF
                    return CloseReason.PEER_EOF
                if not self._call(self._handler.on_recv, s.id, data):
                    return CloseReason.HANDLER_ERROR
        return CloseReason.DISCONNECT  # closed by someone else; that reason was kept

    async def _write(self, s: Session) -> None:
        """send_all what is queued (partial sends are Trio's job) until the queue is empty;
        then FIN if the session is closing, and end: `_wake` starts a writer for new bytes."""
        try:
            while True:
                with self._lock:
                    if not s.queue:
                        if s.life.closing:  # everything accepted is in the kernel:
                            advance(self, s, time.monotonic())  # the core says FIN
                        return
                    data = b"".join(s.queue.buffers())
                try:
                    await s.stream.send_all(data)  # suspends while the peer does not read (S6)
                except _STREAM_GONE:
                    with self._lock:
                        self._close(s, CloseReason.RESET)
                    return
                with self._lock:
                    s.queue.written(len(data))
        finally:
            s.writing = False

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        """Every callback runs here, on the Trio thread, one session task at a time (S2);
        an exception ends that session only (S12)."""
        return run_callback(callback, *args)

    # ---- the ending: the core decides (docs/core.md), these perform; `_close` is Ending's

    def _begin_close(self, s: Session) -> None:
        """Wake the writer to flush, and cancel the reader: `_wake`, soon, on the Trio thread
        (run_sync_soon never blocks, so any thread may call this, holding the lock)."""
        if threading.current_thread() is self._thread:
            self._wake(s)  # as in `_poke`: on the Trio thread, no need to go round the loop
            return
        assert self._token is not None
        with contextlib.suppress(trio.RunFinishedError):  # the server is gone; so is `s`
            self._token.run_sync_soon(self._wake, s)

    def _seen(self, s: Session) -> Seen:
        return Seen(queued=bool(s.queue), io_idle=not s.writing)

    def _send_fin(self, s: Session) -> None:
        quietly(s.sock.shutdown, socket.SHUT_WR)  # what SocketStream.send_eof does

    def _abort(self, s: Session) -> None:
        abort_on_close(s.sock)

    def _release(self, s: Session) -> None:
        s.sock.close()  # what SocketStream.aclose does; no task uses it any more

    def _finish_closing(self, s: Session) -> None:
        """Its tasks ended, so nothing more goes out: advance to RELEASE, then on_release."""
        assert self._handler is not None
        with self._lock:
            s.life.expire()
            advance(self, s, time.monotonic())
        self._call(self._handler.on_release, s.id)
        with self._lock:
            self._table.remove(s.id)


make_server = TrioServer
