"""IOCP model: overlapped I/O and a completion port -- a "notify-on-completion" proactor.

Some facts about overlapped I/O and IOCP
----------------------------------------
A readiness model asks "can I read?" and then reads. A *proactor* says "read into this buffer"
and is told later that it is done. On Windows: WSARecv/WSASend/AcceptEx take a buffer and an
OVERLAPPED structure and return at once (WSA_IO_PENDING); the kernel does the I/O; then it
queues a *completion packet* (completion key, OVERLAPPED*, bytes transferred) on the I/O
completion port the socket was associated with (CreateIoCompletionPort). A pool of worker
threads sits in GetQueuedCompletionStatus and handles whatever completed, on any thread.

- The buffer and the OVERLAPPED belong to the kernel until the completion is dequeued: reuse
  them earlier and the kernel writes into memory that now means something else.
- Every operation that was issued completes, exactly once -- also when it fails or is
  cancelled (CancelIoEx, closesocket). So after a session decides to close, completions for
  it still arrive: *late completions*. Free the session on the first error and a late
  completion touches freed memory, or the next session placed there.
- Completions of one socket may be handled by different workers at the same time.

What this means for our code
----------------------------
The Session of the course notes (docs/models/iocp.md): an id (never reused), the socket, a
receive ring lent to the kernel by
RecvPost (two WSABUFs when it wraps), a send queue written by SendPost with gather I/O, at
most one send in flight (two in flight could complete on two workers in either order), and an
IOCount of outstanding operations. When to send FIN, abort and release is the core's
decision (docs/core.md): released exactly when it is closing and its IOCount is zero -- by
whichever worker brings it there -- so no completion can ever find it gone (S8), and
on_release runs once, after every other handler of the session returned (S2).
The handler of a completion holds its operation's count until it is done, and a recv is
re-posted only after on_recv returned, so one session's callbacks never overlap (S2).

The "kernel" on Linux is `_completion_port.py` (epoll, and the non-blocking call when a socket
is ready, done by a worker waiting for packets); this file is written as the Windows application
would be.

Clauses this file works hardest for: S8 (IOCount; timers find sessions by id), S2 (one recv
in flight), S4 (one send in flight; short completions keep the rest queued), S11 (stop cancels,
then drains every completion before closing the port).

Sources:
- Microsoft Learn: "I/O Completion Ports", WSARecv, WSASend, AcceptEx, CancelIoEx,
  GetQueuedCompletionStatus, PostQueuedCompletionStatus.
- CPython Lib/asyncio/windows_events.py (IocpProactor: "wait for the cancelled overlapped
  to complete"); Boost.Asio's reactive emulation of the proactor on Linux.
"""

from __future__ import annotations

import enum
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conformance.api import ServerConfig, SessionHandler
from impls._completion_port import ECANCELED, CompletionPort, OpKind, Overlapped, Packet
from impls._core import RingBuffer, SendQueue, SessionPool, accept_retry_delay, run_callback
from impls._core.lifecycle import CloseReason, IoCount, Lifecycle, Seen, admit_send, advance
from impls._ending import Ending
from impls._sockets import FaultOptIn, abort_on_close, listen, quietly

if TYPE_CHECKING:
    from conformance.faults import FaultInjector

__all__ = ["IocpServer", "make_server"]

# The receive ring each session lends to the kernel with every RecvPost.
RECV_RING = 64 * 1024
# AcceptEx operations kept posted on the listener, so a burst of connects (S10) finds
# accepts waiting instead of each one waiting for the previous completion.
ACCEPTS_POSTED = 16
# Most packets a worker takes in one GetQueuedCompletionStatusEx (its ulCount).
PACKETS_PER_WAKE = 64


class Key(enum.Enum):
    """Completion keys that are not sessions (a session's key is the session itself)."""

    LISTENER = "listener"
    ACCEPT_RETRY = "accept-retry"  # the timer that re-posts an AcceptEx after EMFILE
    QUIT = "quit"


@dataclass(frozen=True)
class Linger:
    """Completion key of a linger timer: the session *id*, not the session, because the
    timer may fire after the session is gone -- and then it must find nothing (S8)."""

    session_id: int


@dataclass(slots=True, eq=False)
class Session:
    id: int
    sock: socket.socket
    peer: tuple[str, int]
    queue: SendQueue
    ring: RingBuffer = field(default_factory=lambda: RingBuffer(RECV_RING))
    life: Lifecycle = field(default_factory=Lifecycle)
    io: IoCount = field(default_factory=IoCount)
    lock: threading.Lock = field(default_factory=threading.Lock)
    recv_ov: Overlapped | None = None  # the one WSARecv in flight
    send_ov: Overlapped | None = None  # the one WSASend in flight

    def __repr__(self) -> str:
        return (f"<Session id={self.id} {self.life} {self.io} {self.queue} "
                f"recv={'pending' if self.recv_ov else 'idle'} "
                f"send={'pending' if self.send_ov else 'idle'}>")


class IocpServer(FaultOptIn, Ending[Session]):
    """Proactor over an I/O completion port. See the module docstring."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._lock = threading.Lock()  # the table, the accept count, stopping
        self._all_done = threading.Condition(self._lock)
        # The session array of the course notes (docs/models/iocp.md): ids are (generation,
        # slot index), never reused (S1).
        self._table: SessionPool[Session] = SessionPool()
        self._handler: SessionHandler | None = None
        self._port: CompletionPort | None = None
        self._listener: socket.socket | None = None
        self._workers: list[threading.Thread] = []
        self._accepts_pending = 0  # AcceptEx posted, or waiting out an EMFILE back-off
        self._stopping = False

    def start(
        self, handler: SessionHandler, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, int]:
        self._handler = handler
        self._port = CompletionPort(None if self._faults is None else _HeldPackets(self._faults))
        self._listener = self.listener_socket(listen(host, port))
        self._port.associate(self._listener, Key.LISTENER)
        with self._lock:
            for _ in range(ACCEPTS_POSTED):
                self._accept_post()
        self._workers = [
            threading.Thread(target=self._worker, name=f"iocp-worker-{i}", daemon=True)
            for i in range(max(1, self._config.workers))
        ]
        for w in self._workers:
            w.start()
        bound: tuple[str, int] = self._listener.getsockname()[:2]
        return bound

    def send(self, session_id: int, data: bytes) -> bool:
        s = self._lookup(session_id)
        if s is None:
            return False  # S8
        with s.lock:
            if not admit_send(s, data):
                return False  # S8: closing; S7: over the limit
            self._send_post(s)
            return True

    def disconnect(self, session_id: int) -> bool:
        s = self._lookup(session_id)
        if s is None:
            return False
        with s.lock:
            return self._close(s, CloseReason.DISCONNECT)

    def stop(self) -> None:
        if threading.current_thread() in self._workers:
            raise RuntimeError("stop() was called from inside a callback; call it from the owner")
        with self._lock:
            if self._stopping or self._port is None or self._listener is None:
                return
            self._stopping = True
            sessions = self._table.snapshot()
        port, listener = self._port, self._listener
        port.cancel(listener)  # the posted AcceptEx operations complete, cancelled
        for s in sessions:
            with s.lock:
                self._close(s, CloseReason.STOP)
        with self._lock:
            # Asyncio's rule: don't exit with running overlapped. Every operation completes
            # (flushes take at most linger), and only then the port and sockets go.
            self._all_done.wait_for(lambda: not self._table and not self._accepts_pending)
        listener.close()
        for _ in self._workers:
            port.post(Key.QUIT, None)
        for w in self._workers:
            w.join()
        port.close()

    def _lookup(self, session_id: int) -> Session | None:
        with self._lock:
            return self._table.get(session_id)

    # ---- the workers: GetQueuedCompletionStatus and one dispatch over completion keys

    def _worker(self) -> None:
        """GetQueuedCompletionStatusEx: take every packet queued (up to PACKETS_PER_WAKE) in
        one wake, and handle them in order. stop() posts one QUIT per worker; a worker that
        took more than one passes the others on, so every worker gets its own."""
        assert self._port is not None
        while True:
            quits = 0
            for packet in self._port.get_many(PACKETS_PER_WAKE):
                if packet.key is Key.QUIT:
                    quits += 1
                else:
                    self._dispatch(packet)
            if quits:
                for _ in range(quits - 1):
                    self._port.post(Key.QUIT, None)
                return

    def _dispatch(self, packet: Packet) -> None:
        """One completion, by its key: whose operation it was."""
        key = packet.key
        if key is Key.LISTENER:
            self._on_accept_done(packet)
        elif key is Key.ACCEPT_RETRY:
            self._on_accept_retry()
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

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        """Every callback goes through here, on a worker, without any lock held (S13);
        an exception ends that session only (S12)."""
        return run_callback(callback, *args)

    # ---- accept (AcceptEx)

    def _accept_post(self) -> None:
        """AcceptEx: an accept the kernel completes when a connection arrives. Caller holds
        self._lock, so stop() either sees this operation (and cancels it) or prevents it."""
        assert self._port is not None and self._listener is not None
        self._accepts_pending += 1
        self._port.issue(Overlapped(OpKind.ACCEPT, self._listener))

    def _accept_failed(self, error: int) -> None:
        """An AcceptEx failed: post another, so ACCEPTS_POSTED stay outstanding (S10) -- at
        once, or after the core's back-off. Caller holds self._lock.

        The trap is EMFILE (Windows: WSAEMFILE, WSAENOBUFS): out of descriptors, an AcceptEx
        posted now fails at once, and again, and again -- a worker spins a core until a
        descriptor is freed (S6). So it is re-posted by a timer packet; meanwhile it still
        counts as pending, so stop() waits for it.
        """
        assert self._port is not None
        if delay := accept_retry_delay(error):
            self._accepts_pending += 1
            self._port.post_after(delay, Key.ACCEPT_RETRY, Overlapped(OpKind.TIMER, None))
        else:
            self._accept_post()

    def _on_accept_retry(self) -> None:
        """The back-off after EMFILE is over: post the AcceptEx (unless stopping)."""
        with self._lock:
            self._accepts_pending -= 1
            self._all_done.notify_all()
            if not self._stopping:
                self._accept_post()

    def _on_accept_done(self, packet: Packet) -> None:
        assert self._handler is not None and self._port is not None
        ov = packet.overlapped
        assert ov is not None
        conn, addr = ov.conn, ov.addr or ("", 0)
        queue = SendQueue(self._config.send_queue_limit)
        with self._lock:  # atomic with stop(): it sees both the new accept and the session
            self._accepts_pending -= 1
            self._all_done.notify_all()
            if packet.error or conn is None or self._stopping:
                if conn is not None:
                    conn.close()  # never announced: nothing is owed to it
                if not self._stopping and packet.error != ECANCELED:
                    # Failed, e.g. out of descriptors (EMFILE): re-post -- after a back-off,
                    # since an AcceptEx posted at once would fail at once, forever (S6).
                    self._accept_failed(packet.error)
                return
            self._accept_post()  # keep ACCEPTS_POSTED outstanding (S10)
            s = self._table.add(lambda sid: Session(
                sid, self.session_socket(conn, sid), (addr[0], addr[1]), queue))
            s.io.started()  # this handler's own reference, held until it returns
            # Associated before send() can find the id, so its first WSASend has a key.
            self._port.associate(s.sock, s)  # completion key = the session
        ok = self._call(self._handler.on_connect, s.id, s.peer)
        with s.lock:
            s.life.connected()
            if not ok:
                self._close(s, CloseReason.HANDLER_ERROR)
            self._recv_post(s)
        self._finished(s)

    # ---- receive (WSARecv)

    def _recv_post(self, s: Session) -> None:
        """RecvPost: lend the free part of the ring (one or two WSABUFs) to WSARecv.
        Caller holds s.lock. At most one recv is ever in flight (S2, S3)."""
        assert self._port is not None
        if s.life.closing or s.recv_ov is not None:
            return
        s.recv_ov = Overlapped(OpKind.RECV, s.sock, s.ring.free_segments())
        s.io.started()
        self._port.issue(s.recv_ov)

    def _on_recv_done(self, s: Session, packet: Packet) -> None:
        assert self._handler is not None
        data = b""
        with s.lock:
            s.recv_ov = None  # the ring is ours again
            if packet.error == ECANCELED:
                pass  # we cancelled it: the session is already closing
            elif packet.error:
                self._close(s, CloseReason.RESET)
            elif packet.nbytes == 0:  # S5: the zero-byte recv -- the peer closed its side
                self._close(s, CloseReason.PEER_EOF)
            else:
                s.ring.commit(packet.nbytes)
                data = s.ring.take()
        if data:
            ok = self._call(self._handler.on_recv, s.id, data)
            with s.lock:
                if not ok:
                    self._close(s, CloseReason.HANDLER_ERROR)
                self._recv_post(s)  # only now: on_recv calls never overlap (S2)
        self._finished(s)

    # ---- send (WSASend)

    def _send_post(self, s: Session) -> None:
        """SendPost: hand the queued chunks to one WSASend (gather I/O), unless one is already
        in flight -- two could complete on two workers in either order (S4). The chunks stay
        in the queue, untouched, until the completion says how much was sent. Caller holds
        s.lock."""
        assert self._port is not None
        if s.send_ov is not None or not s.queue or s.life.aborting:
            return
        s.send_ov = Overlapped(OpKind.SEND, s.sock, s.queue.buffers())
        s.io.started()
        self._port.issue(s.send_ov)

    def _on_send_done(self, s: Session, packet: Packet) -> None:
        with s.lock:
            s.send_ov = None
            if packet.error and packet.error != ECANCELED:
                self._close(s, CloseReason.RESET)
            elif not packet.error:
                s.queue.written(packet.nbytes)  # S4: a short completion keeps the rest
                self._send_post(s)
        self._finished(s)

    # ---- the ending: the core decides (docs/core.md), these perform; `_close` is Ending's

    def _begin_close(self, s: Session) -> None:
        """Do at once what is due (FIN if nothing is queued); then, only if bytes are still
        to flush, arm the linger timer. The timer finds the session by id: if the flush ended
        and the session is gone by then, nothing to do (S8)."""
        assert self._port is not None
        now = time.monotonic()
        advance(self, s, now)  # never releases: every caller holds an IOCount reference
        # Still FLUSHING: the peer must take the queue within linger, or be aborted (S9).
        # A close with nothing queued is past FLUSHING already (FIN sent): no timer to arm,
        # and no stale packet to dequeue later -- the common close, once per connection.
        if (deadline := s.life.wake_at) is not None:
            self._port.post_after(deadline - now, Linger(s.id), Overlapped(OpKind.TIMER, None))

    def _seen(self, s: Session) -> Seen:
        return Seen(queued=bool(s.queue) or s.send_ov is not None, io_idle=s.io.idle)

    def _send_fin(self, s: Session) -> None:
        """FIN after every accepted byte; CancelIoEx, so the pending recv completes and the
        IOCount can reach zero."""
        assert self._port is not None
        quietly(s.sock.shutdown, socket.SHUT_WR)
        self._port.cancel(s.sock)

    def _abort(self, s: Session) -> None:
        """Send nothing more (`_send_post`) and cancel everything in flight; close() sends RST."""
        assert self._port is not None
        abort_on_close(s.sock)
        self._port.cancel(s.sock)

    def _release(self, s: Session) -> None:
        s.sock.close()  # no operation is pending on it: nothing can touch it any more

    def _on_linger_expired(self, session_id: int) -> None:
        s = self._lookup(session_id)
        if s is None:
            return  # Stale timer: the session was released in time. Nothing to do (S8).
        with s.lock:
            s.io.started()  # this handler's own reference, as every handler holds one
            s.life.expire()  # the peer did not take the bytes within linger (S9)
        self._finished(s)

    def _finished(self, s: Session) -> None:
        """A completion handler is done: drop its IOCount, and perform what the core says; the
        handler that brings a closing session to zero releases it -- exactly once (S2, S8)."""
        assert self._handler is not None
        with s.lock:
            s.io.finished()
            # (a live session has nothing for the core to decide: skip asking, on every
            # completion of every echo)
            if not s.life.closing or not advance(self, s, time.monotonic()):
                return  # from RELEASE on, send(id) and disconnect(id) return False (S8)
        self._call(self._handler.on_release, s.id)
        with self._lock:
            self._table.remove(s.id)  # after on_release: stop() waits for an empty table
            self._all_done.notify_all()


class _HeldPackets:
    """Under the suite's fault injection, the port holds a session's completion packets back
    as its schedule says (`conformance.faults`); short completions come from its socket."""

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults

    def cap(self, op: Overlapped) -> int | None:
        return None

    def delay(self, packet: Packet) -> float:
        key = packet.key
        return self.faults.hold(key.id) if isinstance(key, Session) else 0.0


make_server = IocpServer
