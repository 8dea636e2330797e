"""Blocking model: a thread per session, and every socket call waits until the kernel can do it.

Some facts about blocking sockets
---------------------------------
Every socket has a kernel *send buffer* and a *receive buffer*, both FIFO byte queues.
`send()` copies bytes into the send buffer and returns; it blocks only while that buffer is
full -- that is, while the peer is not reading and its receive window is closed. `recv()`
copies bytes out of the receive buffer; it blocks only while that buffer is empty, and returns
0 bytes exactly when the peer has closed its side (FIN): the zero-byte recv. `accept()` blocks
until a connection is waiting in the listen backlog.

What this means for our code
----------------------------
A thread that calls a blocking function can do nothing else, so each session gets its own
thread, and the model is simply "one straight-line program per connection":

- the *reader* (session thread) runs `on_connect`, then `recv()` -> `on_recv` until recv
  returns 0 or fails, then runs the close and `on_release`. All callbacks of one session come
  from this one thread, so they can never overlap (S2).
- send() must never wait for the peer (S6): it may run on the game's thread, or on another
  session's reader. So it queues the bytes in the session's `SendQueue` and, when nothing was
  queued before, writes them at once with `sendmsg(..., MSG_DONTWAIT)`: this one call returns
  EAGAIN instead of blocking, while the socket stays blocking for the threads. Usually the
  kernel takes everything and that is all (asyncio calls this the optimistic write).
  Winsock's send() has no such flag (only the whole socket can be made non-blocking, with
  ioctlsocket(FIONBIO)): there this model would leave every send to the writer.
- only when the kernel did not take it all does the session get its second thread, the
  *writer*: it waits for bytes in the queue and hands them to a blocking `sendmsg()`, so a
  peer that stops reading blocks its own writer, never the application's thread nor any other
  session (S6). From then on, until the session ends, every send() goes through the writer,
  after what it holds (S4). Most sessions never need one: the thread start, and a thread
  wakeup per message, are saved (docs/performance.md has the figures).
- closing is the hard part: a thread blocked in `recv()` cannot be told "stop" except through
  the socket. `shutdown(SHUT_RD)` makes its recv return 0 (disconnect, stop), and when linger
  expires, `shutdown(SHUT_RDWR)` makes a writer blocked in send fail (S9). *When* each happens
  is the core's decision (docs/core.md); a writer thread still running is this model's
  "IO outstanding".

The cost is a thread (and its stack) per connection, two while a peer is slow to read: fine for
dozens, not for ten thousand. That is why the other four models exist.

Clauses this file works hardest for: S6 (MSG_DONTWAIT, then a writer), S9 (waking blocked threads),
S8 (a socket is shut down or closed only under the lock, so never after its fd was reused).

Sources:
- recv(2), send(2) (MSG_DONTWAIT), shutdown(2), socket(7) (SO_LINGER) -- Linux man-pages.
- W. R. Stevens, UNIX Network Programming vol. 1, ch. 4-6 (blocking I/O, shutdown).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from conformance.api import ServerConfig, SessionHandler
from impls._core import SendQueue, SessionTable, accept_retry_delay, run_callback
from impls._core.lifecycle import CloseReason, Lifecycle, Seen, admit_send, advance, next_timeout
from impls._ending import Ending
from impls._sockets import FaultOptIn, abort_on_close, listen, quietly

__all__ = ["BlockingServer", "make_server"]

log = logging.getLogger(__name__)

# One recv() takes at most this much: large enough that a bulk transfer costs few calls,
# small enough that a thousand idle sessions do not pin much memory.
RECV_SIZE = 64 * 1024


@dataclass(slots=True, eq=False)
class Session:
    id: int
    sock: socket.socket
    peer: tuple[str, int]
    queue: SendQueue
    life: Lifecycle
    wakeup: threading.Condition  # the writer waits here for bytes or the close
    reader: threading.Thread | None = None
    writer: threading.Thread | None = None  # from the first send() the kernel did not take

    def __repr__(self) -> str:
        return f"<Session id={self.id} fd={self.sock.fileno()} {self.life} {self.queue}>"


class BlockingServer(FaultOptIn, Ending[Session]):
    """Thread-per-session server on blocking sockets. See the module docstring."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        # One lock guards the table, every queue and every lifecycle. It is never held while
        # a callback runs (S13) nor across a call that can block.
        self._lock = threading.Lock()
        self._table: SessionTable[Session] = SessionTable()
        self._listener: socket.socket | None = None
        self._handler: SessionHandler | None = None
        self._acceptor: threading.Thread | None = None
        self._readers: set[threading.Thread] = set()
        self._stopping = False

    def start(
        self, handler: SessionHandler, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, int]:
        self._handler = handler
        self._listener = self.listener_socket(listen(host, port))
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="blocking-accept", daemon=True
        )
        self._acceptor.start()
        bound: tuple[str, int] = self._listener.getsockname()[:2]
        return bound

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            if not admit_send(s, data):
                return False  # S8: unknown/closing id; S7: over the limit
            if s.writer is not None:
                s.wakeup.notify()  # the writer sends it, after the bytes it holds (S4)
            elif s.queue:
                self._write_now(s)
            return True

    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            return s is not None and self._close(s, CloseReason.DISCONNECT)

    def stop(self) -> None:
        if threading.current_thread() in self._readers:
            raise RuntimeError("stop() was called from inside a callback; call it from the owner")
        with self._lock:
            first, self._stopping = not self._stopping, True
        if first and self._listener is not None:
            # shutdown() wakes the accept() blocked in the acceptor; close() alone would not.
            quietly(self._listener.shutdown, socket.SHUT_RDWR)
        if self._acceptor is not None:
            self._acceptor.join()
        with self._lock:
            for s in self._table:
                self._close(s, CloseReason.STOP)
            readers = list(self._readers)
        for t in readers:
            t.join()  # each reader releases its session, bounded by linger
        if self._listener is not None:
            self._listener.close()

    # ---- accept

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, addr = self._listener.accept()
            except OSError as exc:
                if self._stopping:
                    return
                log.warning("accept() failed: %s", exc)  # e.g. EMFILE; keep serving
                time.sleep(accept_retry_delay(exc.errno))  # out of fds: let some close first
                continue
            with self._lock:
                if self._stopping:
                    conn.close()
                    continue
                s = self._table.add(partial(self._new_session, conn=conn, addr=addr))
                s.reader = threading.Thread(
                    target=self._serve, args=(s,), name=f"blocking-reader-{s.id}", daemon=True
                )
                self._readers.add(s.reader)
            s.reader.start()

    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int]) -> Session:
        return Session(sid, self.session_socket(conn, sid), (addr[0], addr[1]),
                       SendQueue(self._config.send_queue_limit), Lifecycle(),
                       threading.Condition(self._lock))

    # ---- readable: the session thread, the one place callbacks are called

    def _serve(self, s: Session) -> None:
        handler = self._handler
        assert handler is not None
        reason = CloseReason.PEER_EOF
        if self._call(handler.on_connect, s.id, s.peer):
            with self._lock:
                s.life.connected()
            buf = bytearray(RECV_SIZE)
            view = memoryview(buf)
            while True:
                try:
                    n = s.sock.recv_into(buf)  # blocks until data, FIN or error
                except OSError:
                    reason = CloseReason.RESET
                    break
                if n == 0:  # S5: the zero-byte recv -- the peer closed (or we shut down RD)
                    break
                if not self._call(handler.on_recv, s.id, bytes(view[:n])):
                    reason = CloseReason.HANDLER_ERROR
                    break
        else:
            reason = CloseReason.HANDLER_ERROR
        with self._lock:
            self._close(s, reason)  # ignored if something else closed it first
        self._finish_closing(s)
        with self._lock:
            self._readers.discard(threading.current_thread())

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        """Every callback goes through here, on the session's reader thread (S2); an
        exception ends this session only (S12)."""
        return run_callback(callback, *args)

    # ---- writable: send() at once, and the writer thread for what the kernel did not take

    def _write_now(self, s: Session) -> None:
        """The optimistic write (caller holds the lock; `s` has no writer, so the queue holds
        only this send's bytes). MSG_DONTWAIT: if the send buffer is full, this one call fails
        with EAGAIN instead of waiting for the peer (S6). What the kernel did not take is the
        writer's, started here and kept until the session ends."""
        try:
            n = s.sock.sendmsg(s.queue.buffers(), (), socket.MSG_DONTWAIT)
        except BlockingIOError:
            n = 0
        except OSError:
            self._close(s, CloseReason.RESET)
            return
        s.queue.written(n)  # S4: the rest stays queued, first in line
        if s.queue:
            s.writer = threading.Thread(
                target=self._write, args=(s,), name=f"blocking-writer-{s.id}", daemon=True
            )
            # Started under the lock, so that whoever next holds it sees the writer alive:
            # "IO outstanding" (`_seen`) is never false while a writer is about to send.
            s.writer.start()

    def _write(self, s: Session) -> None:
        while True:
            with self._lock:
                while not s.queue and not s.life.closing:
                    s.wakeup.wait()
                if not s.queue:  # closing, and everything accepted is in the kernel:
                    advance(self, s, time.monotonic())  # the core says FIN, unless it did
                    return
                buffers = s.queue.buffers()
            try:
                n = s.sock.sendmsg(buffers)  # blocks while the peer's window is closed (S6)
            except OSError:
                with self._lock:
                    self._close(s, CloseReason.RESET)
                return
            with self._lock:
                s.queue.written(n)  # S4: a short write leaves the rest queued, first in line

    # ---- the ending: the core decides (docs/core.md), these perform; `_close` is Ending's

    def _begin_close(self, s: Session) -> None:
        """Wake the writer (if the session has one) to flush, and the reader out of recv() to
        `_finish_closing`."""
        if s.writer is not None:
            s.wakeup.notify()
        if s.life.reason is not CloseReason.PEER_EOF:
            # Makes the reader's blocked recv() return 0. Under the lock, so the fd cannot have
            # been closed and handed to another connection in between (S8).
            quietly(s.sock.shutdown, socket.SHUT_RD)

    def _seen(self, s: Session) -> Seen:
        return Seen(queued=bool(s.queue), io_idle=s.writer is None or not s.writer.is_alive())

    def _send_fin(self, s: Session) -> None:
        quietly(s.sock.shutdown, socket.SHUT_WR)

    def _abort(self, s: Session) -> None:
        """RST on close; and shutdown makes the writer's blocked send fail (S9)."""
        abort_on_close(s.sock)
        quietly(s.sock.shutdown, socket.SHUT_RDWR)

    def _release(self, s: Session) -> None:
        self._table.remove(s.id)  # from here on, send(id) and disconnect(id) miss (S8)
        s.sock.close()

    def _finish_closing(self, s: Session) -> None:
        """Reader thread: perform what the core says, waiting for the writer until the linger
        deadline, until the session is released; then on_release. Without a writer there is
        nothing to wait for: the first `advance` sends FIN (or aborts, after a reset) and
        releases."""
        assert self._handler is not None
        while True:
            with self._lock:
                now = time.monotonic()
                if advance(self, s, now):
                    break
                timeout = next_timeout([s.life.wake_at], now)
            assert s.writer is not None  # only bytes in a writer's care make the core wait
            s.writer.join(timeout)
        self._call(self._handler.on_release, s.id)


make_server = BlockingServer
