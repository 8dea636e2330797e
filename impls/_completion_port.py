"""An I/O completion port for Linux: the kernel object of the IOCP model, emulated.

Windows does overlapped I/O in the kernel: WSARecv/WSASend/AcceptEx return at once, the
kernel owns the buffers until the operation is done, then queues a *completion packet* (key,
OVERLAPPED*, bytes transferred, error) on the socket's port, and workers take packets with
GetQueuedCompletionStatus (`iocp.py` says more). Linux has no such thing for sockets, so this
module builds one the way Boost.Asio does: epoll says when a socket of a pending operation is
ready, the operation is performed then, and its packet is queued. Like Asio's scheduler, the
port has no thread of its own: a worker that finds no packet queued, while no other worker is
in epoll, *plays the kernel* -- it waits in epoll, performs what became ready, queues the
packets, and takes them (the others sleep until there are packets for them). On one worker the
whole server is one thread, and a completion costs no hand-off between threads. `iocp.py`
cannot tell the difference: it is written as Windows IOCP code is written. The rules it depends
on, kept here:

1. Every operation that was issued completes exactly once: done, failed, or cancelled
   (CancelIoEx, or the socket closed); nothing is silently dropped. So a completion can
   arrive after its session decided to close (a *late completion*), and a session may be
   freed only when its count of outstanding operations (IOCount) is zero.
2. The buffers of an operation belong to the "kernel" from issue until its packet is
   dequeued; the application must not touch or reuse them in between.
3. An operation that can complete at once still completes through the port (as on Windows
   without FILE_SKIP_COMPLETION_PORT_ON_SUCCESS), so there is one code path per operation.

How it differs from Windows: the I/O is done by a worker when the socket is ready (not by
the NIC into locked pages), so a send completes for what fit into the socket buffer (maybe
fewer bytes than asked: a short completion, which Windows rarely gives), and while every worker
is busy in a handler no pending operation progresses (Windows goes on filling the buffers);
timers are packets too (Windows code would use a timer queue).

Faults, for tests: `CompletionPort(faults=...)` (default None: no faults, an `is None` test
per attempt and packet) lets a test do what the real kernel may do and loopback rarely does.
*Split*: cap the bytes one WSARecv/WSASend moves -- a recv completes with whatever arrived,
and Windows completes a send short when non-paged pool or locked pages run out. *Delay*:
hold a packet back; held packets are queued in deadline order, so completions of different
sockets come out reordered, as when the worker that dequeued one is descheduled. Rules 1-3
hold: a cap cuts a prefix of the WSABUFs (no byte lost or invented), a held packet's buffers
stay the kernel's until it is dequeued, and close() queues whatever is still held.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import heapq
import itertools
import os
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

__all__ = ["CompletionFaults", "CompletionPort", "Op", "OpKind", "Overlapped", "Packet"]

# The error a cancelled operation completes with (Windows: ERROR_OPERATION_ABORTED, 995).
ECANCELED = errno.ECANCELED

# The kernel's handle table: a port lives until close() (CloseHandle), whatever references
# the application drops, so a port it forgets stays open, as on Windows, instead of being
# closed by the garbage collector some time later.
_OPEN_PORTS: set[CompletionPort] = set()


class OpKind(enum.Enum):
    ACCEPT = "AcceptEx"
    RECV = "WSARecv"
    SEND = "WSASend"
    TIMER = "timer"


class Op(enum.Enum):
    """Where an operation is in its life (rule 1: PENDING -> COMPLETED exactly once)."""

    PENDING = "pending"
    COMPLETED = "completed"


@dataclass(eq=False)
class Overlapped:
    """One operation, the OVERLAPPED: `buffers` is its WSABUF array (views the kernel writes
    into or reads from); `conn`/`addr` receive AcceptEx's new socket."""

    kind: OpKind
    handle: socket.socket | None
    buffers: list[memoryview] = field(default_factory=list)
    state: Op = Op.PENDING
    conn: socket.socket | None = None
    addr: tuple[str, int] | None = None

    def __repr__(self) -> str:
        size = sum(len(b) for b in self.buffers)
        return f"<Overlapped {self.kind.value} {self.state.name} {size} bytes>"


class Packet(NamedTuple):
    """What GetQueuedCompletionStatus returns. (A NamedTuple: one is made per operation, and
    it is made in a third of a frozen dataclass's time.)"""

    key: object
    overlapped: Overlapped | None
    nbytes: int
    error: int = 0  # 0, or an errno: ECANCELED for a cancelled operation


class CompletionFaults(Protocol):
    """A test's faults (module docstring). Called with the port's lock held, by the worker in
    epoll or inside issue()/cancel(): be quick, and never call the port."""

    def cap(self, op: Overlapped) -> int | None:
        """Most bytes this attempt of a RECV/SEND `op` may move (at least 1), or None."""

    def delay(self, packet: Packet) -> float:
        """Seconds to hold back an operation's or a timer's packet (not post()'s); 0: none."""


class CompletionPort:
    """CreateIoCompletionPort, PostQueuedCompletionStatus, GetQueuedCompletionStatus(Ex),
    CancelIoEx -- and the kernel's part, played by a waiting worker (`_play_kernel`). `faults`
    may be set later too; it applies to attempts and packets from then on."""

    def __init__(self, faults: CompletionFaults | None = None) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._packets: deque[Packet] = deque()
        self._keys: dict[int, object] = {}  # fd -> completion key (CreateIoCompletionPort)
        self._pending: dict[int, list[Overlapped]] = {}  # fd -> operations waiting to run
        # (deadline, order, packet): timers (operation PENDING) and held packets (COMPLETED)
        self._later: list[tuple[float, int, Packet]] = []
        self._order = itertools.count()
        self._epoll = select.epoll()
        self._armed: set[int] = set()  # fds registered with self._epoll
        # Interrupts the worker in epoll when a packet is queued and no worker sleeps on
        # _ready, or a timer is set that is due before its poll would end.
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wakeup, select.EPOLLIN)
        self._polling = False  # a worker is in epoll, playing the kernel
        self._sleepers = 0  # workers waiting on _ready, for packets or their turn in epoll
        self._closed = False
        _OPEN_PORTS.add(self)

    # ---- the Win32 surface

    def associate(self, handle: socket.socket, key: object) -> None:
        """CreateIoCompletionPort(handle, port, key): completions for `handle` carry `key`."""
        handle.setblocking(False)
        with self._lock:
            self._keys[handle.fileno()] = key

    def issue(self, op: Overlapped) -> None:
        """WSARecv / WSASend / AcceptEx: start `op`; its packet comes through get().

        Windows' fast path: an operation that can complete now (bytes already received, room
        in the socket buffer, a connection waiting) completes here, on the issuing thread --
        unless one of its kind is pending on the socket already (they complete in order) --
        and its packet still goes through the port (rule 3). Otherwise it waits for epoll."""
        assert op.handle is not None
        with self._lock:
            fd = op.handle.fileno()
            waiting = self._pending.get(fd)
            ahead = waiting is not None and any(o.kind is op.kind for o in waiting)
            if not ahead and self._perform(fd, op):
                self._wake()
                return
            self._pending.setdefault(fd, []).append(op)
            self._arm(fd)

    def post(self, key: object, overlapped: Overlapped | None, nbytes: int = 0) -> None:
        """PostQueuedCompletionStatus: queue a packet of the application's own."""
        with self._lock:
            self._packets.append(Packet(key, overlapped, nbytes))
            self._wake()

    def post_after(self, delay: float, key: object, overlapped: Overlapped) -> None:
        """A timer: `overlapped` (kind TIMER) completes after `delay` seconds."""
        with self._lock:
            self._hold(delay, Packet(key, overlapped, 0))

    def get(self, timeout: float | None = None) -> Packet | None:
        """GetQueuedCompletionStatus: the next packet, or None after `timeout` seconds."""
        packets = self.get_many(1, timeout)
        return packets[0] if packets else None

    def get_many(self, limit: int, timeout: float | None = None) -> list[Packet]:
        """GetQueuedCompletionStatusEx: every queued packet up to `limit` (at least one), or
        [] after `timeout` seconds. One lock pass for all of them, where get() pays one per
        packet. With nothing queued, the caller plays the kernel -- unless another worker
        already does, and then it sleeps until woken."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            packets = self._packets
            while not packets:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                if self._polling:
                    self._sleepers += 1
                    try:
                        self._ready.wait(left)
                    finally:
                        self._sleepers -= 1
                else:
                    self._play_kernel(left)
            taken = [packets.popleft() for _ in range(min(limit, len(packets)))]
            if packets:
                # The rest, for another worker (the one a _wake notified for them may be this
                # one, which takes only `limit`): a sleeper, or else the worker in epoll --
                # without the interrupt they would wait for its next event, forever when no
                # socket or timer is due (a QUIT from stop()).
                self._wake()
            elif self._sleepers and not self._polling:
                # The turn in epoll this worker leaves: to a sleeper, so operations go on
                # completing while this one runs its handlers.
                self._ready.notify()
            return taken

    def cancel(self, handle: socket.socket) -> None:
        """CancelIoEx(handle, NULL): every pending operation on `handle` completes with
        ECANCELED (rule 1: cancelled operations still complete)."""
        with self._lock:
            fd = handle.fileno()
            cancelled = self._pending.pop(fd, [])
            for op in cancelled:
                self._complete(fd, op, 0, ECANCELED)
            self._disarm(fd)
            if cancelled:
                self._wake()

    def close(self) -> None:
        """CloseHandle(port), once no worker waits on it any more. The owner drains its
        operations first (rule 1); packets still held are queued, and timers not yet due
        complete with ECANCELED."""
        with self._lock:
            self._closed = True
            while self._later:  # rule 1 to the end (closed: _fire holds nothing back)
                self._fire(heapq.heappop(self._later)[2], ECANCELED)
            self._ready.notify_all()
        self._epoll.close()
        os.close(self._wakeup)
        _OPEN_PORTS.discard(self)

    # ---- the "kernel": performs operations when their sockets are ready

    def _play_kernel(self, timeout: float | None) -> None:
        """One turn of the kernel, on the calling worker: wait in epoll (at most `timeout`
        seconds, or until the next timer), perform the operations whose sockets are ready
        and queue their packets, fire the timers that are due. Caller holds the lock; it is
        let go during the wait, so other threads issue, cancel and post meanwhile."""
        if self._later:
            due = max(0.0, self._later[0][0] - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        self._polling = True
        self._lock.release()
        try:
            events = self._epoll.poll(timeout)
        finally:
            self._lock.acquire()
            self._polling = False
        for fd, _ in events:
            if fd == self._wakeup:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self._wakeup)
            elif not self._attempt(fd):
                self._arm(fd)
        now = time.monotonic()
        while self._later and self._later[0][0] <= now:  # in deadline order
            self._fire(heapq.heappop(self._later)[2])

    def _wake(self) -> None:
        """Packets were queued by a thread that is not in get_many(): wake a sleeping worker
        to take them, or else interrupt the one in epoll. With every worker busy in its
        handlers, nothing: each comes back to get_many() and finds them. Caller holds the
        lock."""
        if self._sleepers:
            self._ready.notify()
        elif self._polling:
            os.eventfd_write(self._wakeup, 1)

    def _attempt(self, fd: int) -> bool:
        """epoll says `fd` is ready: run its pending operations that can run now, in issue
        order per kind. True if none is left waiting. Caller holds the lock."""
        waiting = self._pending.get(fd, [])
        blocked: list[OpKind] = []  # kinds that would block now: the rest of them would too
        for op in list(waiting):
            if op.kind in blocked:
                continue  # e.g. 16 AcceptEx and one connection: one accept(), not 16
            if self._perform(fd, op):
                waiting.remove(op)
            else:
                blocked.append(op.kind)
        if not waiting:
            # The one-shot registration is spent: it stays, disabled, for the next _arm.
            self._pending.pop(fd, None)
            return True
        return False

    def _perform(self, fd: int, op: Overlapped) -> bool:
        """The I/O of `op`, non-blocking: True if it completed (done or failed: its packet is
        queued), False if it would block (it stays pending). Caller holds the lock."""
        assert op.handle is not None
        error = 0
        try:
            if op.kind is OpKind.RECV:
                n = op.handle.recvmsg_into(self._capped(op))[0]  # scatter read: WSABUF[2]
            elif op.kind is OpKind.SEND:
                n = op.handle.sendmsg(self._capped(op))  # gather write
            else:
                op.conn, op.addr = op.handle.accept()
                n = 0
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            n, error = 0, exc.errno or errno.EIO
        self._complete(fd, op, n, error)
        return True

    def _capped(self, op: Overlapped) -> list[memoryview]:
        """The WSABUFs of `op` cut to the faults' cap: a prefix, fewer bytes, never others."""
        limit = self.faults.cap(op) if self.faults is not None else None
        if limit is None:
            return op.buffers
        starts = itertools.accumulate((len(b) for b in op.buffers), initial=0)
        return [b[: max(0, max(1, limit) - at)] for b, at in zip(op.buffers, starts, strict=False)]

    def _complete(self, fd: int, op: Overlapped, nbytes: int, error: int) -> None:
        assert op.state is Op.PENDING, f"{op} completed twice"
        op.state = Op.COMPLETED
        self._queue(Packet(self._keys.get(fd), op, nbytes, error))

    def _queue(self, packet: Packet) -> None:
        """Queue a completion for get(), unless the faults hold it back. Caller holds the lock,
        and wakes a worker when it is done queueing (one notify for a turn's packets)."""
        delay = self.faults.delay(packet) if self.faults is not None and not self._closed else 0
        if delay > 0:
            self._hold(delay, packet)
        else:
            self._packets.append(packet)

    def _hold(self, delay: float, packet: Packet) -> None:
        """Keep `packet` until `delay` seconds from now (a timer, or a held packet)."""
        heapq.heappush(self._later, (time.monotonic() + delay, next(self._order), packet))
        if self._polling:  # the worker in epoll recomputes its timeout
            os.eventfd_write(self._wakeup, 1)

    def _fire(self, packet: Packet, error: int = 0) -> None:
        """A deadline came: a timer completes (its packet may be held); a held packet is queued."""
        op = packet.overlapped
        if op is not None and op.state is Op.PENDING:
            op.state = Op.COMPLETED
            self._queue(Packet(packet.key, op, 0, error))
        else:
            self._packets.append(packet)

    def _arm(self, fd: int) -> None:
        """Watch `fd` for what its pending operations need (one-shot: re-armed per try)."""
        mask = select.EPOLLONESHOT
        for op in self._pending.get(fd, []):
            # (`is` tests, not a set of kinds: an Enum's __hash__ is Python code, and this
            # runs for every operation that cannot complete at once)
            if op.kind is OpKind.SEND:
                mask |= select.EPOLLOUT
            else:  # RECV, ACCEPT
                mask |= select.EPOLLIN | select.EPOLLRDHUP
        # `_armed` spares the usual case a failing syscall and its exception; the fallbacks
        # are for a fd the kernel dropped from epoll when it was closed, then reused.
        if fd in self._armed:
            try:
                self._epoll.modify(fd, mask)
            except FileNotFoundError:
                self._epoll.register(fd, mask)
        else:
            try:
                self._epoll.register(fd, mask)
            except FileExistsError:
                self._epoll.modify(fd, mask)
            self._armed.add(fd)

    def _disarm(self, fd: int) -> None:
        """Forget `fd` in epoll: its operations were cancelled (and it may be closed next)."""
        if fd in self._armed:  # most operations complete at once, never armed
            self._armed.discard(fd)
            with contextlib.suppress(OSError, ValueError):  # dropped by the kernel; fd -1
                self._epoll.unregister(fd)
