"""Select model: one thread, non-blocking sockets, a "notify-when-ready" multiplexer.

Some facts about select
-----------------------
A *non-blocking* socket never waits: where a blocking call would have waited, it fails at once
with EWOULDBLOCK/EAGAIN ("would block": the call was lucky not to block, and did nothing). A
loop that just retries burns a whole core, so we ask first: `select(rlist, wlist, xlist,
timeout)` blocks until at least one of the listed sockets is *ready* -- readable (data, a FIN,
an error, or for a listener a pending connection) or writable (room in the send buffer) -- and
returns the ready ones.

- select is *level-triggered*: a socket with unread data is reported on every call until it is
  read. So interest in writability must be dropped when there is nothing to write, or every
  call returns at once and the loop spins (S6).
- Every call passes the whole interest set to the kernel and scans it again on return: O(n) per
  call, in both directions. epoll exists to remove that cost.
- `fd_set` is a bitmap of FD_SETSIZE bits (1024 on Linux): a descriptor numbered 1024 or
  higher cannot be watched at all (CPython raises ValueError). So this model serves under a
  thousand connections per process, and we refuse a connection whose fd is too high rather
  than crash the loop.

What this means for our code
----------------------------
One loop thread does all I/O and runs every callback, so callbacks never overlap (S2) and
need no lock among themselves. send() may come from any thread: it appends to the session's
`SendQueue` under a lock and writes at once, from the head of the queue (asyncio's "optimistic
write": usually the kernel takes it all and the loop never hears of it). Only if bytes are left
over -- the send buffer is full -- does the loop need to watch for writability; if it may be
asleep in select, send() wakes it through a socketpair -- the classic self-pipe trick. Every
write happens under the lock, so bytes of two threads never interleave (S4), and the socket is
non-blocking, so send() never waits for the peer (S6). The loop writes the rest when the socket
is writable, keeps whatever the kernel did not take (S4), and at the end of every turn performs
what the core (docs/core.md) says each closing session needs: FIN once its queue is flushed,
RST once its linger deadline passed (S5, S9), then release.

Clauses this file works hardest for: S6 (write interest only while bytes are queued),
S13 (the lock is never held while a callback runs), S4 (partial writes).

Sources:
- select(2) (FD_SETSIZE, "readable" includes EOF), socket(7), Linux man-pages.
- CPython Lib/selectors.py; asyncio selector_events.py (the self-pipe wakeup).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from conformance.api import ServerConfig, SessionHandler
from impls._core import AcceptBackoff, SendQueue, SessionTable, run_callback
from impls._core.lifecycle import CloseReason, Lifecycle, Seen, admit_send, advance, next_timeout
from impls._ending import Ending
from impls._sockets import FaultOptIn, abort_on_close, listen, quietly

__all__ = ["SelectServer", "make_server"]

log = logging.getLogger(__name__)

# select() cannot watch a descriptor >= FD_SETSIZE (1024 on Linux).
FD_SETSIZE = 1024
# One recv() takes at most this much; the loop reuses one buffer for every session.
RECV_SIZE = 64 * 1024
# At most this many accept() calls per readable event, so a connect storm cannot starve
# the sessions that are already open (S10: "keeps accepting while others are busy").
ACCEPTS_PER_EVENT = 64


@dataclass(slots=True, eq=False)
class Session:
    id: int
    sock: socket.socket
    peer: tuple[str, int]
    queue: SendQueue
    life: Lifecycle
    read_eof: bool = False  # recv returned 0: stop asking for readability

    def __repr__(self) -> str:
        return f"<Session id={self.id} fd={self.sock.fileno()} {self.life} {self.queue}>"


class SelectServer(FaultOptIn, Ending[Session]):
    """One-thread select() loop. See the module docstring."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        # Guards the table, the queues and the lifecycles against send()/disconnect() from
        # other threads. Never held while a callback runs (S13).
        self._lock = threading.Lock()
        self._table: SessionTable[Session] = SessionTable()
        self._by_sock: dict[socket.socket, Session] = {}  # loop thread only
        # Sessions whose ending began, not yet released (guarded by the lock): each turn
        # looks at these only, not at every session (select already costs O(all) per call).
        self._closing: set[Session] = set()
        self._listener: socket.socket | None = None
        self._handler: SessionHandler | None = None
        self._loop_thread: threading.Thread | None = None
        # The self-pipe, made in start(): a factory builds a server without doing I/O.
        self._waker_r: socket.socket
        self._waker_w: socket.socket
        self._asleep = False  # the loop is (about to be) blocked in select()
        self._backoff = AcceptBackoff()  # after an accept() failure, leave the listener
        self._stopping = False

    def start(
        self, handler: SessionHandler, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, int]:
        self._handler = handler
        self._listener = self.listener_socket(listen(host, port))
        self._waker_r, self._waker_w = socket.socketpair()
        for sock in (self._listener, self._waker_r, self._waker_w):
            sock.setblocking(False)
        self._loop_thread = threading.Thread(target=self._loop, name="select-loop", daemon=True)
        self._loop_thread.start()
        bound: tuple[str, int] = self._listener.getsockname()[:2]
        return bound

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            if not admit_send(s, data):
                return False  # S8: unknown/closing id; S7: over the limit
            self._write(s)
            if s.queue:
                self._wake()  # the loop must add this socket to the write set
            return True

    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            return s is not None and self._close(s, CloseReason.DISCONNECT)

    def stop(self) -> None:
        if threading.current_thread() is self._loop_thread:
            raise RuntimeError("stop() was called from inside a callback; call it from the owner")
        if self._loop_thread is None:
            return  # never started
        with self._lock:
            self._stopping = True
            self._wake()
        self._loop_thread.join()  # the loop releases every session before it exits
        for sock in (self._waker_r, self._waker_w):
            sock.close()

    def _wake(self) -> None:
        """Interrupt select() from another thread (caller holds the lock)."""
        if self._asleep:
            self._asleep = False
            try:
                self._waker_w.send(b"\0")
            except BlockingIOError:
                pass  # the pipe is full of wakeups already: the loop will wake anyway

    # ---- the loop

    def _loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        buf = bytearray(RECV_SIZE)
        while True:
            with self._lock:
                if self._stopping:
                    break
                rlist = [self._waker_r]
                if self._backoff.due(time.monotonic()):
                    rlist.append(listener)
                rlist += [s.sock for s in self._by_sock.values() if not s.read_eof]
                wlist = [s.sock for s in self._by_sock.values() if self._wants_write(s)]
                timeout = self._next_deadline()
                self._asleep = True
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
            with self._lock:
                self._asleep = False
            for sock in readable:
                if sock is listener:
                    self._on_acceptable(listener)
                elif sock is self._waker_r:
                    quietly(self._waker_r.recv, 4096)
                elif (s := self._by_sock.get(sock)) is not None:
                    self._on_readable(s, buf)
            for sock in writable:
                if (ready := self._by_sock.get(sock)) is not None:
                    self._on_writable(ready)
            self._finish_closing()
        self._shut_down(listener)

    @staticmethod
    def _wants_write(s: Session) -> bool:
        """Level-triggered: ask for writability only while bytes wait. A socket with room in
        its send buffer is always writable, so asking otherwise wakes select() at once, every
        time: the loop spins a core doing nothing (S6)."""
        return bool(s.queue)

    def _next_deadline(self) -> float | None:
        """select() timeout: until the nearest linger deadline (or accept retry), or forever.
        Caller holds the lock. A closing session with nothing queued is due now: its ending
        began after this turn's `_finish_closing` (a disconnect() from another thread while
        the loop was awake, so `_wake` did not write to the pipe)."""
        now = time.monotonic()
        wake = [s.life.wake_at if s.queue else now for s in self._closing]
        return next_timeout([*wake, self._backoff.wake_at(now)], now)

    # ---- accept

    def _on_acceptable(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                conn, addr = listener.accept()
            except BlockingIOError:
                return  # backlog empty
            except OSError as exc:
                # e.g. EMFILE: level-triggered, the listener would be reported again at once
                log.warning("accept() failed: %s", exc)
                if self._backoff.failed(exc.errno, time.monotonic()):
                    return  # left out of rlist until the back-off is over
                continue
            if conn.fileno() >= FD_SETSIZE:
                log.error("fd %d >= FD_SETSIZE: select() cannot watch it; refusing", conn.fileno())
                conn.close()
                continue
            conn.setblocking(False)
            with self._lock:
                s = self._table.add(partial(self._new_session, conn=conn, addr=addr))
            self._by_sock[s.sock] = s
            assert self._handler is not None
            ok = self._call(self._handler.on_connect, s.id, s.peer)
            with self._lock:
                s.life.connected()
                if not ok:
                    self._close(s, CloseReason.HANDLER_ERROR)

    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int]) -> Session:
        queue = SendQueue(self._config.send_queue_limit)
        return Session(sid, self.session_socket(conn, sid), (addr[0], addr[1]), queue,
                       Lifecycle())

    # ---- readable

    def _on_readable(self, s: Session, buf: bytearray) -> None:
        assert self._handler is not None
        try:
            n = s.sock.recv_into(buf)
        except BlockingIOError:
            return  # a spurious wakeup: nothing to read after all
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

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        """The only place callbacks are called, always on the loop thread and without the
        lock (S2, S13). An exception ends that session only (S12)."""
        return run_callback(callback, *args)

    # ---- writable

    def _on_writable(self, s: Session) -> None:
        with self._lock:
            self._write(s)

    def _write(self, s: Session) -> None:
        """One write of what is queued, if anything is; caller holds the lock (the loop, or
        send() on any thread). Level-triggered, the loop hears again if bytes remain."""
        if not s.queue:
            return
        try:
            n = s.sock.sendmsg(s.queue.buffers())  # gather write: one syscall, many chunks
        except BlockingIOError:
            return
        except OSError:
            self._close(s, CloseReason.RESET)
            return
        s.queue.written(n)  # S4: a partial write leaves the rest queued, first in line

    # ---- the ending: the core decides (docs/core.md), these perform; `_close` is Ending's

    def _begin_close(self, s: Session) -> None:
        """The loop's next turn flushes it and ends it (`_finish_closing`)."""
        self._closing.add(s)
        self._wake()

    def _seen(self, s: Session) -> Seen:
        return Seen(queued=bool(s.queue))

    def _send_fin(self, s: Session) -> None:
        quietly(s.sock.shutdown, socket.SHUT_WR)

    def _abort(self, s: Session) -> None:
        abort_on_close(s.sock)

    def _release(self, s: Session) -> None:
        self._closing.discard(s)
        del self._by_sock[s.sock]
        self._table.remove(s.id)  # from here on, send(id) and disconnect(id) miss (S8)
        s.sock.close()

    def _finish_closing(self) -> None:
        """Every turn: perform what the core says each closing session needs; on_release for
        those it released, without the lock (S13)."""
        assert self._handler is not None
        if not self._closing:  # read without the lock: one added meanwhile has woken us
            return
        now = time.monotonic()
        with self._lock:
            done = [s for s in list(self._closing) if advance(self, s, now)]
        for s in done:
            self._call(self._handler.on_release, s.id)

    def _shut_down(self, listener: socket.socket) -> None:
        """stop(): close the listener, then flush and release every session (S11)."""
        listener.close()
        with self._lock:
            for s in self._by_sock.values():
                self._close(s, CloseReason.STOP)
        while self._by_sock:
            with self._lock:
                wlist = [s.sock for s in self._by_sock.values() if self._wants_write(s)]
                timeout = self._next_deadline()
            _, writable, _ = select.select([], wlist, [], timeout) if wlist else ([], [], [])
            for sock in writable:
                if (ready := self._by_sock.get(sock)) is not None:
                    self._on_writable(ready)
            self._finish_closing()


make_server = SelectServer
