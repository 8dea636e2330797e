"""An I/O completion port for Linux: the kernel object of the IOCP model, emulated.

On Windows the kernel does overlapped I/O by itself: WSARecv/WSASend/AcceptEx return at once
(usually with WSA_IO_PENDING), the kernel owns the buffers until the operation is done, and
then queues a *completion packet* -- (completion key, OVERLAPPED*, bytes transferred, error) --
on the port the socket is associated with. Worker threads take packets with
GetQueuedCompletionStatus. Linux has no such thing for sockets, so this module builds one the
way Boost.Asio does: a readiness loop (epoll) performs each pending operation when its socket
is ready, and queues the packet. The application side (`iocp.py`) cannot tell the difference,
and that is the point: it is written as Windows IOCP code is written.

The rules this object keeps, because IOCP code depends on them:

1. Every operation that was issued completes exactly once: done, failed, or cancelled
   (CancelIoEx, or the socket closed). Nothing is ever silently dropped. This is why a
   completion can arrive after its session decided to close -- a *late completion* -- and
   why the application may free a session only when its count of outstanding operations
   (IOCount) is zero.
2. The buffers of an operation belong to the "kernel" from issue until its packet is
   dequeued; the application must not touch or reuse them in between.
3. An operation that can complete at once still completes through the port (as on Windows
   without FILE_SKIP_COMPLETION_PORT_ON_SUCCESS), so there is one code path per operation.

How it differs from the Windows kernel: the I/O is done by a thread of ours when the socket
is ready (not by the NIC into locked pages), so a send completes for what fit into the kernel
socket buffer (possibly fewer bytes than asked: a short completion, which Windows rarely
gives), and timers are packets too (Windows code would use a timer queue).
"""

from __future__ import annotations

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

__all__ = ["CompletionPort", "Op", "OpKind", "Overlapped", "Packet"]

# The error a cancelled operation completes with (Windows: ERROR_OPERATION_ABORTED, 995).
ECANCELED = errno.ECANCELED


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
    """One outstanding operation: the OVERLAPPED structure and what it carries.

    `buffers` is the WSABUF array: views of memory the kernel writes into (recv) or reads from
    (send). `conn`/`addr` receive AcceptEx's new socket.
    """

    kind: OpKind
    handle: socket.socket | None
    buffers: list[memoryview] = field(default_factory=list)
    state: Op = Op.PENDING
    conn: socket.socket | None = None
    addr: tuple[str, int] | None = None

    def __repr__(self) -> str:
        size = sum(len(b) for b in self.buffers)
        return f"<Overlapped {self.kind.value} {self.state.name} {size} bytes>"


@dataclass(frozen=True, slots=True)
class Packet:
    """What GetQueuedCompletionStatus returns."""

    key: object
    overlapped: Overlapped | None
    nbytes: int
    error: int = 0  # 0, or an errno: ECANCELED for a cancelled operation


class CompletionPort:
    """CreateIoCompletionPort, PostQueuedCompletionStatus, GetQueuedCompletionStatus,
    CancelIoEx -- and the engine thread that plays the kernel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._packets: deque[Packet] = deque()
        self._keys: dict[int, object] = {}  # fd -> completion key (CreateIoCompletionPort)
        self._pending: dict[int, list[Overlapped]] = {}  # fd -> operations waiting to run
        self._timers: list[tuple[float, int, object, Overlapped]] = []
        self._order = itertools.count()
        self._epoll = select.epoll()
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wakeup, select.EPOLLIN)
        self._closed = False
        self._engine = threading.Thread(target=self._run, name="iocp-kernel", daemon=True)
        self._engine.start()

    # ---- the Win32 surface

    def associate(self, handle: socket.socket, key: object) -> None:
        """CreateIoCompletionPort(handle, port, key): completions for `handle` carry `key`."""
        handle.setblocking(False)
        with self._lock:
            self._keys[handle.fileno()] = key

    def issue(self, op: Overlapped) -> None:
        """WSARecv / WSASend / AcceptEx: start `op`; its packet comes through get()."""
        assert op.handle is not None
        with self._lock:
            fd = op.handle.fileno()
            queue = self._pending.setdefault(fd, [])
            queue.append(op)
            if len(queue) == 1 and self._attempt(fd):  # rule 3: even at once, via the port
                return
            self._arm(fd)

    def post(self, key: object, overlapped: Overlapped | None, nbytes: int = 0) -> None:
        """PostQueuedCompletionStatus: queue a packet of the application's own."""
        with self._lock:
            self._packets.append(Packet(key, overlapped, nbytes))
            self._ready.notify()

    def post_after(self, delay: float, key: object, overlapped: Overlapped) -> None:
        """A timer: `overlapped` (kind TIMER) completes after `delay` seconds."""
        with self._lock:
            heapq.heappush(self._timers,
                           (time.monotonic() + delay, next(self._order), key, overlapped))
        os.eventfd_write(self._wakeup, 1)

    def get(self, timeout: float | None = None) -> Packet | None:
        """GetQueuedCompletionStatus: the next packet, or None after `timeout` seconds."""
        with self._lock:
            if not self._ready.wait_for(lambda: self._packets, timeout):
                return None
            return self._packets.popleft()

    def cancel(self, handle: socket.socket) -> None:
        """CancelIoEx(handle, NULL): every pending operation on `handle` completes with
        ECANCELED (rule 1: cancelled operations still complete)."""
        with self._lock:
            fd = handle.fileno()
            for op in self._pending.pop(fd, []):
                self._complete(fd, op, 0, ECANCELED)
            self._disarm(fd)

    def close(self) -> None:
        """Stop the engine. The owner drains its operations first (rule 1)."""
        with self._lock:
            self._closed = True
        os.eventfd_write(self._wakeup, 1)
        self._engine.join()
        self._epoll.close()
        os.close(self._wakeup)

    # ---- the "kernel": performs operations when their sockets are ready

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                timeout = (max(0.0, self._timers[0][0] - time.monotonic())
                           if self._timers else None)
            events = self._epoll.poll(timeout)
            with self._lock:
                for fd, _ in events:
                    if fd == self._wakeup:
                        try:
                            os.eventfd_read(self._wakeup)
                        except BlockingIOError:
                            pass
                    elif not self._attempt(fd):
                        self._arm(fd)
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, key, op = heapq.heappop(self._timers)
                    op.state = Op.COMPLETED
                    self._packets.append(Packet(key, op, 0))
                    self._ready.notify()

    def _attempt(self, fd: int) -> bool:
        """Run the pending operations of `fd` that can run now, in issue order per kind.
        True if none is left waiting. Caller holds the lock."""
        waiting = self._pending.get(fd, [])
        for op in list(waiting):
            assert op.handle is not None
            try:
                if op.kind is OpKind.RECV:
                    n = op.handle.recvmsg_into(op.buffers)[0]  # scatter read: WSABUF[2]
                elif op.kind is OpKind.SEND:
                    n = op.handle.sendmsg(op.buffers)  # gather write
                else:
                    op.conn, op.addr = op.handle.accept()
                    n = 0
            except (BlockingIOError, InterruptedError):
                continue  # not ready: stays pending
            except OSError as exc:
                waiting.remove(op)
                self._complete(fd, op, 0, exc.errno or errno.EIO)
                continue
            waiting.remove(op)
            self._complete(fd, op, n, 0)
        if not waiting:
            self._pending.pop(fd, None)
            self._disarm(fd)
            return True
        return False

    def _complete(self, fd: int, op: Overlapped, nbytes: int, error: int) -> None:
        assert op.state is Op.PENDING, f"{op} completed twice"
        op.state = Op.COMPLETED
        self._packets.append(Packet(self._keys.get(fd), op, nbytes, error))
        self._ready.notify()

    def _arm(self, fd: int) -> None:
        """Watch `fd` for what its pending operations need (one-shot: re-armed per try)."""
        kinds = {op.kind for op in self._pending.get(fd, [])}
        mask = select.EPOLLONESHOT
        if kinds & {OpKind.RECV, OpKind.ACCEPT}:
            mask |= select.EPOLLIN | select.EPOLLRDHUP
        if OpKind.SEND in kinds:
            mask |= select.EPOLLOUT
        try:
            self._epoll.modify(fd, mask)
        except FileNotFoundError:
            self._epoll.register(fd, mask)

    def _disarm(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except (FileNotFoundError, OSError):
            pass
