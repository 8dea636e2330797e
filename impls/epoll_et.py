"""Edge-triggered epoll model: N loop threads, each with its own epoll, every event drained.

Some facts about epoll
----------------------
`epoll_create` makes a kernel object that remembers an *interest list* (`epoll_ctl` ADD, MOD,
DEL), so unlike select nothing is copied in per call, and `epoll_wait` returns only the
descriptors that are ready: the cost is per ready socket, not per watched socket.

- Level-triggered (the default) reports a socket on every `epoll_wait` while it is ready, like
  select. *Edge-triggered* (EPOLLET) reports a socket once, when it *becomes* ready. So every
  event must be *drained*: recv until EAGAIN (or 0 = the peer's FIN), accept until EAGAIN (a
  burst of fifty connects is one event), send until the queue is empty or EAGAIN. Stop early
  and the rest waits for an edge that never comes -- the classic edge-triggered bug.
- Interest in writability (EPOLLOUT) is armed only while bytes are queued and the last send hit
  EAGAIN. Level-triggered, an armed EPOLLOUT on a socket with room reports it on every call:
  the loop spins at 100% CPU with nothing to write (S6). Edge-triggered it would not spin, but
  it would still wake the loop once per drained buffer for no work.
- EPOLLRDHUP reports the peer's FIN (its half-close) as its own flag; recv returning 0 says the
  same thing, and we rely on that.
- An epoll instance is not a thread pool (IOCP is): the answer the course notes give is one
  epoll per thread (docs/models/epoll.md).

What this means for our code
----------------------------
`workers` loops, each a thread with its own epoll and its own wakeup eventfd. Loop 0 also
owns the listener; it accepts and hands each connection to a loop, round-robin, through that
loop's inbox (its own share it adopts at once: posting to itself would cost a turn). A
session belongs to one loop for its whole life, so its callbacks come from one thread and
never overlap (S2). Draining is fair: each turn reads at most READS_PER_TURN times from one
socket and accepts at most ACCEPTS_PER_TURN connections; a socket cut short is remembered and
served next turn, because no new edge will come for it.
The same goes for accept() failing with EMFILE (out of descriptors): the connection stays in
the backlog with no new edge to come, so the drain stays pending and resumes after a back-off.

send() from any thread appends to the session's queue under a lock and, unless EPOLLOUT is
already armed (the kernel's buffer was full), writes at once -- usually the whole message, and
the loop never hears of it (asyncio's "optimistic write"). Only what the kernel refuses waits:
EPOLLOUT is armed then, and the loop writes the rest when it fires. Every write happens under
the lock, from the head of the queue, so two threads never interleave bytes (S4), and the
socket is non-blocking, so send() never waits for the peer (S6). Closing is as in the select
model: the core decides (docs/core.md), each loop performs for its own sessions.

Clauses this file works hardest for: S10 (accept until EAGAIN), S3/S5 (read until EAGAIN or
0), S6 (EPOLLOUT only while needed), S2 (a session never changes loops).

Sources:
- epoll(7) ("Level-triggered and edge-triggered", "Possible pitfalls"), epoll_ctl(2),
  eventfd(2) -- Linux man-pages.
- CPython Lib/selectors.py (EpollSelector); trio `_core/_io_epoll.py` (its essay on epoll).
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from conformance.api import ServerConfig, SessionHandler
from impls._core import AcceptBackoff, SendQueue, SessionTable, run_callback
from impls._core.lifecycle import CloseReason, Lifecycle, Seen, admit_send, advance, next_timeout
from impls._ending import Ending
from impls._sockets import FaultOptIn, abort_on_close, listen, quietly

__all__ = ["EpollServer", "make_server"]

# epoll_wait returns at most this many events per call; more simply wait for the next call.
MAX_EVENTS = 1024
# One recv() takes at most this much into the loop's buffer.
RECV_SIZE = 64 * 1024
# Fairness: a peer that sends as fast as we read could keep one drain going forever. After
# this many recv() calls the socket waits for the next turn (remembered, since no new edge
# will announce it).
READS_PER_TURN = 16
# Likewise for a connect storm against the sessions already open (S10).
ACCEPTS_PER_TURN = 256

BASE = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
WITH_OUT = BASE | select.EPOLLOUT
# An event with any of these means "recv now": data, the peer's FIN, or an error recv reports.
READABLE = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR


@dataclass(slots=True, eq=False)
class Session:
    id: int
    sock: socket.socket
    peer: tuple[str, int]
    queue: SendQueue
    life: Lifecycle
    loop: Loop
    read_eof: bool = False  # recv returned 0
    out_armed: bool = False  # EPOLLOUT is in the interest list (guarded by the server's lock)
    # The descriptor, asked once: epoll and `Loop.sessions` need it on every event.
    fd: int = field(init=False)

    def __post_init__(self) -> None:
        self.fd = self.sock.fileno()

    def __repr__(self) -> str:
        return (f"<Session id={self.id} fd={self.sock.fileno()} {self.life} {self.queue} "
                f"out_armed={self.out_armed}>")


@dataclass(eq=False)
class Loop:
    """One thread, one epoll. Everything here except `inbox`, `flush_soon`, `closing` and
    `asleep` is touched by its own thread only; those four are guarded by the server's lock
    (disconnect() and send() reach them from other threads)."""

    index: int
    epoll: select.epoll = field(default_factory=select.epoll)
    waker: int = field(default_factory=lambda: os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))
    sessions: dict[int, Session] = field(default_factory=dict)  # fd -> session
    inbox: list[tuple[socket.socket, tuple[str, int]]] = field(default_factory=list)
    flush_soon: set[Session] = field(default_factory=set)  # sessions with bytes to write
    more_to_read: set[Session] = field(default_factory=set)  # drains cut short last turn
    closing: set[Session] = field(default_factory=set)
    asleep: bool = False
    thread: threading.Thread | None = None

    def wake(self) -> None:
        """Interrupt epoll_wait from another thread (caller holds the server's lock)."""
        if self.asleep:
            self.asleep = False
            os.eventfd_write(self.waker, 1)


class EpollServer(FaultOptIn, Ending[Session]):
    """Edge-triggered epoll, one loop per worker. See the module docstring."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        # Guards the table, queues, lifecycles and the loops' inboxes against calls from
        # other threads. Never held while a callback runs (S13).
        self._lock = threading.Lock()
        self._table: SessionTable[Session] = SessionTable()
        self._handler: SessionHandler | None = None
        self._listener: socket.socket | None = None
        self._loops: list[Loop] = []
        self._next_loop = itertools.cycle(range(max(1, config.workers)))
        # Loop 0's alone: the listener has connections not yet accepted (an edge came, or
        # the last drain was cut short) -- and, out of descriptors, when to try again.
        self._accept_pending = False
        self._backoff = AcceptBackoff()
        self._stopping = False

    def start(
        self, handler: SessionHandler, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, int]:
        self._handler = handler
        self._listener = self.listener_socket(listen(host, port))
        self._listener.setblocking(False)
        self._loops = [Loop(i) for i in range(max(1, self._config.workers))]
        for loop in self._loops:
            loop.epoll.register(loop.waker, select.EPOLLIN)
            loop.thread = threading.Thread(target=self._run, args=(loop,),
                                           name=f"epoll-loop-{loop.index}", daemon=True)
        self._loops[0].epoll.register(self._listener.fileno(), select.EPOLLIN | select.EPOLLET)
        for loop in self._loops:
            assert loop.thread is not None
            loop.thread.start()
        bound: tuple[str, int] = self._listener.getsockname()[:2]
        return bound

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            if not admit_send(s, data):
                return False  # S8: unknown/closing id; S7: over the limit
            if data and not s.out_armed:
                # The optimistic write: no loop turn, no wakeup, no EPOLLOUT in the common
                # case. With EPOLLOUT armed the kernel's buffer was full a moment ago: leave
                # it to the loop rather than try a write that would almost surely fail.
                self._on_writable(s)
            return True

    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            return s is not None and self._close(s, CloseReason.DISCONNECT)

    def stop(self) -> None:
        if any(threading.current_thread() is loop.thread for loop in self._loops):
            raise RuntimeError("stop() was called from inside a callback; call it from the owner")
        with self._lock:
            self._stopping = True
            for loop in self._loops:
                loop.wake()
        for loop in self._loops:
            if loop.thread is not None:
                loop.thread.join()  # each loop releases its sessions before it exits

    # ---- the loop

    def _run(self, loop: Loop) -> None:
        buf = bytearray(RECV_SIZE)
        listener_fd = self._listener.fileno() if loop.index == 0 and self._listener else -1
        while True:
            with self._lock:
                stopping = self._stopping
                if stopping:
                    self._shut_down(loop)
                    listener_fd = -1  # closed: its number may come back as a session's
                if stopping and not loop.sessions:
                    break
                accept_now = loop.index == 0 and self._accept_due() and not stopping
                busy = loop.more_to_read or loop.flush_soon or loop.inbox or accept_now
                timeout = 0.0 if busy else self._next_deadline(loop)
                loop.asleep = not busy
            events = loop.epoll.poll(timeout, MAX_EVENTS)
            # One lock round trip for what other threads hand over and for the writes EPOLLOUT
            # asked for; reading (and so every callback) happens after it, without the lock.
            with self._lock:
                loop.asleep = False
                new, loop.inbox = loop.inbox, []
                for fd, mask in events:
                    if fd == loop.waker:
                        quietly(os.eventfd_read, loop.waker)
                    elif fd == listener_fd:
                        self._accept_pending = True
                    elif (s := loop.sessions.get(fd)) is not None:
                        if mask & READABLE:
                            loop.more_to_read.add(s)
                        if mask & select.EPOLLOUT:
                            self._on_writable(s)
            for conn, addr in new:
                self._adopt(loop, conn, addr)
            if loop.index == 0 and self._accept_due() and not stopping:
                self._on_acceptable()
            for s in list(loop.more_to_read):
                loop.more_to_read.discard(s)
                self._on_readable(s, buf)
            # send() writes for itself: what is left is the flush of sessions that began
            # closing (`_begin_close`). Looked at without the lock: one added meanwhile makes
            # the next turn busy (checked under the lock), so it waits at most one turn.
            if loop.flush_soon:
                with self._lock:
                    flush, loop.flush_soon = loop.flush_soon, set()
                    for s in flush:
                        self._on_writable(s)
            self._finish_closing(loop)
        loop.epoll.close()
        os.close(loop.waker)

    def _next_deadline(self, loop: Loop) -> float | None:
        """epoll_wait timeout: until the nearest linger deadline (or, on loop 0, the accept
        retry after EMFILE), or forever (None)."""
        now = time.monotonic()
        accept = self._backoff.wake_at(now) if loop.index == 0 and self._accept_pending else None
        return next_timeout([*(s.life.wake_at for s in loop.closing), accept], now)

    # ---- accept

    def _accept_due(self) -> bool:
        """Loop 0: connections wait to be accepted, and no EMFILE back-off is running."""
        return self._accept_pending and self._backoff.due(time.monotonic())

    def _on_acceptable(self) -> None:
        """Accept until EAGAIN: the burst arrived as one edge (S10)."""
        assert self._listener is not None
        for _ in range(ACCEPTS_PER_TURN):
            try:
                conn, addr = self._listener.accept()
            except BlockingIOError:
                self._accept_pending = False  # drained: the next connect is a new edge
                return
            except OSError as exc:
                if self._accept_failed(exc.errno):
                    return
                continue  # ECONNABORTED and friends: that one connection is gone
            loop = self._loops[next(self._next_loop)]
            if loop.index == 0:  # ours: no need to post it to ourselves
                self._adopt(loop, conn, (addr[0], addr[1]))
                continue
            with self._lock:
                if self._stopping:  # that loop may have exited already
                    conn.close()
                    return
                loop.inbox.append((conn, (addr[0], addr[1])))
                loop.wake()

    def _accept_failed(self, error: int | None) -> bool:
        """accept() failed: True if the core's back-off says leave the listener for a while.

        The trap, out of descriptors (EMFILE): the connection was not taken, it still waits in
        the backlog. Clear `_accept_pending` and wait for the next edge, and that edge may
        never come -- nobody else connects, and the backlog is stranded (S10). So the drain
        stays pending and resumes after the back-off, on a timer epoll_wait wakes for
        (`_next_deadline`).
        """
        return self._backoff.failed(error, time.monotonic()) > 0

    def _adopt(self, loop: Loop, conn: socket.socket, addr: tuple[str, int]) -> None:
        """A connection handed to this loop: give it an id, watch it, greet the handler."""
        assert self._handler is not None
        conn.setblocking(False)
        with self._lock:
            if self._stopping:
                conn.close()  # never announced, so nothing is owed to it
                return
            s = self._table.add(partial(self._new_session, conn=conn, addr=addr, loop=loop))
        loop.sessions[s.fd] = s
        # Registering a socket that already has data reports it at once, so nothing that
        # arrived before this line is missed.
        loop.epoll.register(s.fd, BASE)
        ok = self._call(self._handler.on_connect, s.id, s.peer)
        with self._lock:
            s.life.connected()
            if not ok:
                self._close(s, CloseReason.HANDLER_ERROR)

    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int],
                     loop: Loop) -> Session:
        queue = SendQueue(self._config.send_queue_limit)
        sock = self.session_socket(conn, sid, edge_triggered=True)
        return Session(sid, sock, addr, queue, Lifecycle(), loop)

    # ---- readable

    def _on_readable(self, s: Session, buf: bytearray) -> None:
        """recv until EAGAIN or 0 (or READS_PER_TURN, then resume next turn)."""
        assert self._handler is not None
        if s.read_eof or s.sock.fileno() < 0:
            return  # the FIN was read already, or the session was released
        for _ in range(READS_PER_TURN):
            try:
                n = s.sock.recv_into(buf)
            except BlockingIOError:
                return  # drained: the next data is a new edge
            except OSError:
                with self._lock:
                    self._close(s, CloseReason.RESET)
                return
            if n == 0:  # S5: the zero-byte recv -- the peer closed its side
                s.read_eof = True
                with self._lock:
                    self._close(s, CloseReason.PEER_EOF)
                return
            if not self._call(self._handler.on_recv, s.id, bytes(buf[:n])):
                with self._lock:
                    self._close(s, CloseReason.HANDLER_ERROR)
                return
        s.loop.more_to_read.add(s)  # cut short for fairness; no edge will remind us

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        """The only place callbacks are called: on the session's loop thread, without the
        lock (S2, S13). An exception ends that session only (S12)."""
        return run_callback(callback, *args)

    # ---- writable

    def _on_writable(self, s: Session) -> None:
        """send until the queue is empty or EAGAIN; EPOLLOUT armed only in between (S6).
        Caller holds the lock: the loop thread, or any thread in send()."""
        if s.sock.fileno() < 0:
            return
        while s.queue:
            try:
                n = s.sock.sendmsg(s.queue.buffers())  # gather write
            except BlockingIOError:
                if not s.out_armed:
                    s.out_armed = True
                    s.loop.epoll.modify(s.fd, WITH_OUT)
                return
            except OSError:
                self._close(s, CloseReason.RESET)
                return
            s.queue.written(n)  # S4: a partial write leaves the rest queued, first in line
        if s.out_armed:
            s.out_armed = False
            s.loop.epoll.modify(s.fd, BASE)

    # ---- the ending: the core decides (docs/core.md), these perform; `_close` is Ending's

    def _begin_close(self, s: Session) -> None:
        """Its loop flushes it and ends it (`_finish_closing`) from its next turn on."""
        s.loop.closing.add(s)
        s.loop.flush_soon.add(s)
        s.loop.wake()

    def _seen(self, s: Session) -> Seen:
        return Seen(queued=bool(s.queue))

    def _send_fin(self, s: Session) -> None:
        quietly(s.sock.shutdown, socket.SHUT_WR)

    def _abort(self, s: Session) -> None:
        abort_on_close(s.sock)

    def _release(self, s: Session) -> None:
        s.loop.closing.discard(s)
        s.loop.more_to_read.discard(s)
        del s.loop.sessions[s.fd]
        s.loop.epoll.unregister(s.fd)
        self._table.remove(s.id)  # from here on, send(id) and disconnect(id) miss (S8)
        s.sock.close()

    def _finish_closing(self, loop: Loop) -> None:
        """Every turn: perform what the core says each closing session of `loop` needs;
        on_release for those it released, without the lock (S13)."""
        assert self._handler is not None
        if not loop.closing:  # read without the lock, as `flush_soon` in `_run`
            return
        now = time.monotonic()
        with self._lock:
            done = [s for s in list(loop.closing) if advance(self, s, now)]
        for s in done:
            self._call(self._handler.on_release, s.id)

    def _shut_down(self, loop: Loop) -> None:
        """stop(): close the listener (loop 0) and start closing this loop's sessions.
        Caller holds the lock; the loop keeps running until they are released (S11)."""
        if loop.index == 0 and self._listener is not None:
            loop.epoll.unregister(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for conn, _ in loop.inbox:
            conn.close()
        loop.inbox.clear()
        for s in loop.sessions.values():
            self._close(s, CloseReason.STOP)


make_server = EpollServer
