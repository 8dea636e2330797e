"""Fault injection: the kernel's rarer answers, on demand, drawn by Hypothesis.

On loopback the kernel is kind. recv() returns everything that arrived, send() takes whole
buffers until megabytes are queued, EAGAIN comes only when a socket is really empty or full,
and a connection is reset only when a test resets its peer. Real networks are not kind, and
the classic bugs hide in exactly those answers: the short write whose rest is dropped (S4),
the EAGAIN treated as an error (S6), the reset in the middle of a flush (S9), the completion
that comes late (S8) -- docs/contract.md states each clause, docs/mutants.md shows each bug.
An implementation that opts in lets the suite produce them at chosen calls.

**Opting in.** A `SessionServer` may have one more method, called before `start()`:

    def inject_faults(self, faults: FaultInjector) -> None:
        self._faults = faults

and route each session's socket through the injector once it has its id:

    sock = self._faults.wrap_socket(sock, session_id)          # stdlib sockets
    stream = self._faults.wrap_stream(stream, session_id)      # Trio streams
    delay = self._faults.hold(session_id)                      # proactors: before queuing
                                                               # a completion packet

and, to meet accept()'s faults, route the listening socket through it too:

    listener = self._faults.wrap_listener(listener)            # stdlib sockets
    listener = self._faults.wrap_trio_listener(listener)       # a trio.SocketListener

Servers without the method get every black-box property all the same; they just never see
a fault. Only session sockets and the listener are wrapped: wakeup pipes stay exact.

**What a wrapped socket does.** Each session has a schedule of `Step`s for its recv calls
(`recv`, `recv_into`, `recvmsg_into`) and one for its send calls (`send`, `sendmsg`). Each
call consumes the next step; when the schedule runs out, calls are exact again. A step is one
of the `Fault`s -- every one of them something a real kernel does:

- SHORT: move at most `size` bytes (a recv that returns less than arrived, a short write).
- WOULD_BLOCK: raise `BlockingIOError` (EAGAIN) although the kernel had bytes or room -- what
  a readiness model sees after a spurious wakeup. Only on non-blocking sockets that are not
  watched edge-triggered (`edge_triggered=True`): with EPOLLET, EAGAIN is the kernel's
  promise that the next edge will come, so a false one would strand a correct
  implementation that waits for that edge.
- INTERRUPTED: the call is interrupted by a signal (EINTR). Since PEP 475 Python retries it
  itself, so what the implementation meets is the thread being held for `pause` seconds at
  that call -- which widens every race window around it.
- RESET: the connection is reset before the call, for real: an RST goes to the peer and the
  call fails with ECONNRESET (or EPIPE), as after a reset from the network. Tests that draw
  resets relax only that session's expectations (`FaultInjector.reset_ids`).

**What a wrapped listener does.** Its accept() calls follow the plan's `accept` schedule, one
step per call, with two faults of their own:

- EMFILE: the process is out of file descriptors. accept() fails with EMFILE before taking a
  connection, which stays in the backlog -- and the listener stays readable, and (watched
  edge-triggered) no new edge will come for it. The process stays at its limit for `pause`
  seconds from that call: every accept() in between fails the same way (0: just that call).
  Those calls do not advance the schedule, and only the first is noted in the timeline.
- ABORTED: accept() fails with ECONNABORTED -- a connection was reset before it was accepted
  (BSD and Windows drop it; Linux may instead return it, already reset). The suite's stand-in
  takes no connection: the next one is still waiting, and the server must just accept it.

Every injected fault is a note in the scenario's timeline, so a failure shows which faults
led to it. Steps are drawn by Hypothesis (`conformance._strategies.fault_plans`) from the same
data as the scenario, so a failing example shrinks its faults and its client actions together
and replays from its seed. Which call meets which step depends on thread timing, so a replay
is faithful for the calls of one session, in order, not for the interleaving of sessions.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import trio

__all__ = ["Fault", "FaultInjector", "FaultPlan", "SessionFaults", "Step"]


class Fault(enum.Enum):
    NONE = "none"
    SHORT = "short"
    WOULD_BLOCK = "would-block"
    INTERRUPTED = "interrupted"
    RESET = "reset"
    EMFILE = "emfile"  # accept() only: out of file descriptors
    ABORTED = "aborted"  # accept() only: ECONNABORTED


@dataclass(frozen=True)
class Step:
    """What one call meets. `size`: SHORT's byte cap (>= 1); `pause`: INTERRUPTED's seconds,
    or how long EMFILE's limit lasts."""

    fault: Fault = Fault.NONE
    size: int = 1
    pause: float = 0.0

    def __repr__(self) -> str:  # falsifying examples stay one readable line
        if self.fault is Fault.SHORT:
            return f"short({self.size})"
        if self.fault is Fault.INTERRUPTED:
            return f"interrupted({self.pause * 1000:g} ms)"
        if self.fault is Fault.EMFILE and self.pause > 0:
            return f"emfile({self.pause * 1000:g} ms)"
        return str(self.fault.value)


@dataclass(frozen=True)
class SessionFaults:
    """One session's schedule: steps for its recv calls and its send calls, in call order;
    `hold` holds its completion packets back, in seconds each, in order (proactors only)."""

    recv: tuple[Step, ...] = ()
    send: tuple[Step, ...] = ()
    hold: tuple[float, ...] = ()

    @property
    def resets(self) -> bool:
        return any(s.fault is Fault.RESET for s in self.recv + self.send)


@dataclass(frozen=True)
class FaultPlan:
    """Schedules for the sessions, in the order their sockets are wrapped; the k-th gets
    `sessions[k % len(sessions)]`, so a plan covers any number of sessions; and `accept`, the
    listener's steps, one per accept() call (then exact again). Empty: no faults."""

    sessions: tuple[SessionFaults, ...] = ()
    accept: tuple[Step, ...] = ()

    @property
    def resets(self) -> bool:
        return any(s.resets for s in self.sessions)


# (what was injected: a Fault's value or "hold", what happened in words, the session id or None
# for accept()): into the timeline
Note = Callable[[str, str, int | None], object]


class FaultInjector:
    """Hands each session's calls their steps, and the listener's accept() calls theirs.
    Thread-safe: implementation threads call it.

    `note(fault, text, session_id)` puts each injected fault into the timeline (`fault`: the
    `Fault`'s value, or "hold"; a RESET ends its session), and `peer_order(port)`
    says how many test peers connected before the one on client `port` (the harness passes
    its recorder's): the k-th peer's session gets schedule k, whichever thread or loop
    accepts it first. `reset_ids` holds the sessions whose connection a RESET ended, and
    `injected` counts the faults by kind (EMFILE: every accept() call it failed; an accept
    fault's note has no session id).
    """

    def __init__(self, plan: FaultPlan, note: Note | None = None,
                 peer_order: Callable[[int], int | None] | None = None) -> None:
        self.plan = plan
        self._note = note
        self._peer_order = peer_order
        self._lock = threading.Lock()
        self._schedules: dict[int, SessionFaults] = {}
        self._calls: Counter[tuple[int, str]] = Counter()
        self.reset_ids: set[int] = set()
        self.injected: Counter[str] = Counter()  # "short", ..., "hold"
        self._accepts = 0  # accept() calls that took a step of the plan's `accept` schedule
        self._at_limit_until = 0.0  # an EMFILE step's limit lasts until then (monotonic)

    # ---- for implementations

    def wrap_socket(self, sock: socket.socket, session_id: int, *,
                    edge_triggered: bool = False) -> socket.socket:
        """`sock`, as a socket whose recv and send calls meet `session_id`'s schedule.

        The returned object *is* a `socket.socket` on the same file descriptor (`sock` is
        detached and must not be used again), so selectors, epoll and `fileno()` work as
        before. Pass `edge_triggered=True` if its readability is watched with EPOLLET.
        """
        self._schedule(session_id, sock)
        timeout = sock.gettimeout()
        faulty = _FaultySocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        faulty.settimeout(timeout)  # a socket made from a descriptor starts out blocking
        faulty._faults, faulty._session_id = self, session_id
        faulty._edge_triggered = edge_triggered
        return faulty

    def wrap_stream(self, stream: trio.SocketStream,
                    session_id: int) -> trio.abc.HalfCloseableStream:
        """`stream`, as a Trio stream whose receive_some/send_all meet the schedule. Same
        faults, Trio's way: WOULD_BLOCK waits for readiness, INTERRUPTED sleeps."""
        from ._faults_trio import FaultyStream

        self._schedule(session_id, stream.socket)
        return FaultyStream(stream, self, session_id)

    def hold(self, session_id: int) -> float:
        """Seconds to hold back the next completion packet of `session_id` (0: none)."""
        n, holds = self._draw(session_id, "hold")
        seconds = holds[n] if n < len(holds) else 0.0
        if seconds > 0:
            self._record("hold", session_id, f"completion of {session_id} held "
                         f"{seconds * 1000:g} ms")
        return seconds

    def wrap_listener(self, sock: socket.socket) -> socket.socket:
        """`sock` (a listening socket), as one whose accept() calls meet the plan's `accept`
        schedule. Like `wrap_socket`: the same descriptor, `sock` detached."""
        timeout = sock.gettimeout()
        faulty = _FaultyListener(sock.family, sock.type, sock.proto, fileno=sock.detach())
        faulty.settimeout(timeout)
        faulty._faults = self
        return faulty

    def wrap_trio_listener(self, listener: trio.SocketListener
                           ) -> trio.abc.Listener[trio.SocketStream]:
        """`listener`, as a Trio listener whose accept() meets the same schedule. Trio's own
        `SocketListener.accept` retries ECONNABORTED itself, so an ABORTED step is played
        there (noted, then the accept goes on); EMFILE reaches the caller, as in Trio."""
        from ._faults_trio import FaultyListener

        return FaultyListener(listener, self)

    def before_accept(self) -> None:
        """Play the next accept step before a real accept() call: raise EMFILE (while at the
        limit) or ECONNABORTED, or return for an exact call."""
        fault = self.accept_fault()
        if fault is Fault.EMFILE:
            raise OSError(errno.EMFILE, "injected: too many open files")
        if fault is Fault.ABORTED:
            raise OSError(errno.ECONNABORTED, "injected: connection aborted before accept")

    def accept_fault(self) -> Fault:
        """The fault the next accept() call meets (NONE: exact), noted and counted; for a
        listener that plays the steps itself (`before_accept` does it for stdlib sockets)."""
        with self._lock:
            now = time.monotonic()
            if now < self._at_limit_until:
                self.injected[Fault.EMFILE.value] += 1  # still out of descriptors: no note
                return Fault.EMFILE
            n = self._accepts
            self._accepts += 1
            step = self.plan.accept[n] if n < len(self.plan.accept) else Step()
            if step.fault is Fault.EMFILE:
                self._at_limit_until = now + step.pause
        if step.fault is Fault.NONE:
            return step.fault
        self._record(step.fault.value, None, f"accept #{n + 1}: {step!r}")
        return step.fault

    # ---- the steps

    def next(self, session_id: int, op: str) -> Step:
        """The step for the next `op` ("recv" or "send") call of `session_id`: for an
        implementation that plays the steps itself (`before` does it for stdlib sockets)."""
        return self._step(session_id, op)[1]

    def _step(self, session_id: int, op: str) -> tuple[int, Step]:
        """(call number from 0, its step) for the next `op` call of `session_id`."""
        n, steps = self._draw(session_id, op)
        return n, (steps[n] if n < len(steps) else Step())

    def _draw(self, session_id: int, what: str) -> tuple[int, Sequence[Any]]:
        """Count one more `what` ("recv", "send" or "hold") for `session_id`: returns how
        many came before it and that part of the session's schedule (empty: none)."""
        with self._lock:
            schedule = self._schedules.get(session_id)
            if schedule is None:
                return 0, ()
            n = self._calls[(session_id, what)]
            self._calls[(session_id, what)] += 1
            return n, getattr(schedule, what)

    def before(self, sock: socket.socket, session_id: int, op: str, *,
               would_block: bool) -> int | None:
        """Play the next step before a real call: pause, reset or raise EAGAIN here, and
        return SHORT's cap (None: no cap). `would_block`: whether EAGAIN may be injected."""
        step = self.take(sock, session_id, op, would_block=would_block)
        if step is None:
            return None
        if step.fault is Fault.SHORT:
            return step.size
        if step.fault is Fault.WOULD_BLOCK:
            raise BlockingIOError(errno.EAGAIN, "injected: would block")
        if step.fault is Fault.INTERRUPTED:
            time.sleep(step.pause)  # the thread held where a signal interrupted it
        return None

    def take(self, sock: _HasFileno, session_id: int, op: str, *,
             would_block: bool) -> Step | None:
        """The next step to play, noted in the timeline; None if there is nothing to play.
        A RESET is done here, on `sock`; the other faults are the caller's to play."""
        n, step = self._step(session_id, op)
        fault = step.fault
        if fault is Fault.NONE or (fault is Fault.WOULD_BLOCK and not would_block):
            return None
        self._record(fault.value, session_id, f"{op} #{n + 1} of session {session_id}: {step!r}")
        if fault is Fault.RESET:
            with self._lock:
                self.reset_ids.add(session_id)
            reset_connection(sock)
        return step

    def _schedule(self, session_id: int, sock: _HasPeer) -> None:
        """Give `session_id` its schedule: by its peer's place in the connect order if the
        peer is known, else by the order of wrapping."""
        sessions = self.plan.sessions
        if not sessions:
            return
        order = None
        if self._peer_order is not None:
            try:
                order = self._peer_order(sock.getpeername()[1])
            except (OSError, IndexError, TypeError):
                pass  # reset before it was wrapped: no peer address
        with self._lock:
            if session_id not in self._schedules:
                k = len(self._schedules) if order is None else order
                self._schedules[session_id] = sessions[k % len(sessions)]

    def _record(self, fault: str, session_id: int | None, text: str) -> None:
        with self._lock:
            self.injected[fault] += 1
        if self._note is not None:
            self._note(fault, text, session_id)


class _FaultySocket(socket.socket):
    """A socket.socket whose recv/send family meets a schedule first (see the module)."""

    _faults: FaultInjector
    _session_id: int
    _edge_triggered: bool

    def _before(self, op: str) -> int | None:
        would_block = not self.getblocking() and not self._edge_triggered
        return self._faults.before(self, self._session_id, op, would_block=would_block)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        cap = self._before("recv")
        return super().recv(bufsize if cap is None else min(cap, bufsize), flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        cap = self._before("recv")
        if cap is not None:
            nbytes = min(cap, nbytes or memoryview(buffer).nbytes)
        return super().recv_into(buffer, nbytes, flags)

    def recvmsg_into(self, buffers: Any, *args: Any) -> Any:
        cap = self._before("recv")
        return super().recvmsg_into(_prefix(buffers, cap), *args)

    def send(self, data: Any, flags: int = 0) -> int:
        cap = self._before("send")
        return super().send(data if cap is None else memoryview(data)[:cap], flags)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        cap = self._before("send")
        return super().sendmsg(_prefix(buffers, cap), *args)


class _FaultyListener(socket.socket):
    """A listening socket.socket whose accept() meets the plan's `accept` steps first."""

    _faults: FaultInjector

    def accept(self) -> tuple[socket.socket, Any]:
        self._faults.before_accept()
        return super().accept()


def _prefix(buffers: Any, cap: int | None) -> list[memoryview]:
    """The first `cap` bytes of a scatter/gather list (all of it if `cap` is None)."""
    views = [memoryview(b).cast("B") for b in buffers]
    if cap is None:
        return views
    out: list[memoryview] = []
    for view in views:
        if cap <= 0:
            break
        out.append(view[:cap])
        cap -= len(view[:cap])
    return out


_libc = ctypes.CDLL(None, use_errno=True)
_AF_UNSPEC = struct.pack("H14x", socket.AF_UNSPEC)


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


class _HasPeer(Protocol):
    def getpeername(self) -> Any: ...


def reset_connection(sock: _HasFileno) -> None:
    """Reset `sock`'s connection now, leaving the descriptor open: connect(2) to AF_UNSPEC
    disconnects a TCP socket, which sends an RST. Afterwards recv fails with ECONNRESET and
    send with EPIPE, exactly as after an RST from the peer. A no-op on a closed socket."""
    fd = sock.fileno()
    if fd >= 0:
        _libc.connect(fd, ctypes.c_char_p(_AF_UNSPEC), len(_AF_UNSPEC))
