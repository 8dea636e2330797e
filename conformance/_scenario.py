"""The test vocabulary: what a property calls to run one scenario against one implementation.

    with conformance.scenario(on_recv=echo) as sc:  # server started, recorder attached
        peer = sc.connect()
        sid = sc.session(peer)                      # waits for its on_connect
        peer.queue(b"hello"); peer.shut_write()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected="the peer to read EOF")
        sc.settle(peer, inbound_complete=True, outbound_complete=True)
    # on exit: stop() within its deadline, every session released (S11), and the whole trace
    # checked for S1-S4 (`_checker.check_trace`).

Every wait has a deadline from `Timeouts` (`_timeouts`), or a bound on progress (`stall`);
when one passes, the scenario fails with a `ConformanceFailure` naming the clause, what was
awaited and the timeline. A check the test makes itself fails the same way: `raise
sc.fail(clause, expected, actual)`. What happens when a call into the implementation never
returns is the run protocol's business (`_run`), not the test's.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING

from ._calls import bounded_call, stack_of
from ._checker import ConformanceFailure, Stream, check_trace, render_timeline
from ._environment import SuiteEnvironmentError, somaxconn
from ._loading import bound_address
from ._peers import Deadline, Peer, accept_queue, drive
from ._run import StartFailed, Watchdog
from ._strategies import KERNEL_BUFFERED, make_payload
from ._trace import Kind, Recorder
from .api import LISTEN_BACKLOG, ServerConfig, SessionServer
from .faults import Fault, FaultInjector, FaultPlan

if TYPE_CHECKING:
    from ._harness import Harness

__all__ = ["Scenario"]


class Scenario:
    """One server, its recorder and its peers, for the length of a `with` block."""

    def __init__(self, harness: Harness, rec: Recorder, config: ServerConfig,
                 faults: FaultPlan | None = None) -> None:
        self.harness = harness
        self.timeouts = harness.timeouts
        self.rec = rec
        self.config = config
        self.server: SessionServer = harness.impl.build(config)
        rec.server = self.server
        # The faults being played on this server, if it opts in; None otherwise.
        self.faults: FaultInjector | None = None
        inject = getattr(self.server, "inject_faults", None)
        if faults is not None and (faults.sessions or faults.accept) and callable(inject):
            self.faults = FaultInjector(
                faults, partial(_record_fault, rec),
                partial(rec.peer_order, timeout=harness.timeouts.io))
            inject(self.faults)
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.peers: list[Peer] = []
        self.streams: list[Stream] = []
        self.stopped = False
        self._watchdog = Watchdog()  # the scenario's, once it runs (Harness.scenario)
        # A call into the server that never returned: its thread is stuck for good.
        self.stuck: threading.Thread | None = None
        # (the call, its clause) when the scenario's failure is that call hanging.
        self.hung: tuple[str, str] | None = None

    def _start(self) -> None:
        __tracebackhide__ = True  # failures point at the test, not here
        name = self.harness.impl.name
        limit = self.timeouts.start
        with self._watchdog.paused():
            outcome, thread = bounded_call(
                lambda: self.server.start(self.rec, "127.0.0.1", 0), limit)
        # A server that does not start accepts nobody: S10 (docs/contract.md, S10).
        if thread is not None:
            self.stuck, self.hung = thread, ("start()", "S10")
            self.stopped = True  # stop() on a server still inside start() would race it
            raise StartFailed("S10", f"start() to return the address it bound, once "
                              f"connections can be accepted (within {limit:g} s)",
                              f"it was still running, at:\n{stack_of(thread)}")
        if isinstance(outcome, BaseException):
            raise StartFailed("S10", "start() to return the address it bound, once connections "
                              "can be accepted", f"it raised {type(outcome).__name__}: {outcome}"
                              ) from outcome
        self.address = bound_address(name, outcome)

    # ---- peers

    def connect(self, *, rcvbuf: int | None = None, sndbuf: int | None = None) -> Peer:
        """A new client connection to the server (TCP handshake done by the kernel).

        Fails S10 if connect() times out or is refused: the kernel completes a handshake on
        its own while the connection waits in the listen backlog, so only a full backlog or
        a closed listener makes connect() wait or fail.
        """
        __tracebackhide__ = True
        try:
            with self._watchdog.paused():
                peer = Peer(self.address, self.rec, rcvbuf=rcvbuf, sndbuf=sndbuf,
                            connect_timeout=self.timeouts.io)
        except TimeoutError as exc:  # the verdict says it all: no peer traceback
            raise self._backlog_full(exc) from None
        except ConnectionRefusedError as exc:
            raise self.fail("S10", f"connect() to {self.address} to be accepted while the "
                            "server runs", f"it was refused ({exc}): the listener is closed, "
                            "or the server refuses connections") from None
        self.peers.append(peer)
        return peer

    def _backlog_full(self, exc: TimeoutError) -> BaseException:
        """A connect() that timed out: the server's listen backlog was full (S10), or the
        machine caps every backlog below what the suite needs (environment)."""
        cap = somaxconn()
        if cap is not None and cap < LISTEN_BACKLOG:
            return SuiteEnvironmentError(
                f"connect() to {self.address}", exc,
                f"This machine caps every listen backlog at net.core.somaxconn = {cap}, below "
                f"the {LISTEN_BACKLOG} pending connections the suite's bursts need (S10); "
                f"raise it: sysctl -w net.core.somaxconn=4096.")
        waiting = [p for p in self.peers
                   if p.eof is None and self.rec.session_of(p.port, p.connect_seq) is None]
        queued = accept_queue(self.address)
        held = "" if not queued else (
            f"the listener's accept queue held {queued} connections and took no more (Linux "
            f"queues the backlog + 1: a backlog of {queued - 1}); ")
        return self.fail(
            "S10", f"connect() to {self.address} to complete within {self.timeouts.io:g} s "
            f"(the kernel completes the handshake while the connection waits in the listen "
            f"backlog; only a full backlog makes connect() wait)",
            f"it timed out; {held}{len(waiting)} earlier connections of this scenario had no "
            f"on_connect yet. The listen backlog must hold {LISTEN_BACKLOG} pending "
            f"connections: the suite connects bursts of up to {LISTEN_BACKLOG} while the "
            f"server is busy (S10), so listen() with a backlog of at least {LISTEN_BACKLOG} "
            f"(socket.SOMAXCONN, say)",
        )

    def session(self, peer: Peer, *, clause: str = "S10") -> int:
        """The id the server gave `peer`'s connection: waits for its on_connect."""
        __tracebackhide__ = True
        if peer.session_id is not None:
            return peer.session_id

        found: list[int] = []

        def known() -> bool:
            sid = self.rec.session_of(peer.port, peer.connect_seq)
            if sid is not None and not found:
                found.append(sid)
            return bool(found)

        self.wait(known, clause=clause, timeout=self.timeouts.io,
                  expected=f"on_connect for the connection from port {peer.port}",
                  actual="no on_connect named that peer")
        sid = found[0]
        given = self.rec.peer_of(sid)
        if not _is_address(given, peer.port):
            raise self.fail("S10", f"on_connect({sid}, peer) with the peer's address as "
                            f"(host, port), as getpeername() gives it: ('127.0.0.1', "
                            f"{peer.port})", f"peer was {given!r}", [sid])
        peer.session_id = sid
        return sid

    def drive(
        self, peers: Iterable[Peer], until: Callable[[], bool], *, clause: str, expected: str,
        timeout: float | None = None, stall: float | None = None,
        progress: Callable[[], int] | None = None, session_ids: Iterable[int] = (),
    ) -> None:
        """Move the peers' bytes until `until()` holds; fail naming `expected` if it never does.

        With `stall`, fail as soon as nothing at all happened -- no byte moved, no callback
        -- for that many seconds. A flush to a peer that reads makes steady progress, so a
        long pause means it will never finish; failing then, rather than at the deadline,
        matters because Hypothesis replays a failing example several times to shrink it.

        With `stall` and `progress` (a count that grows as the work gets done and is capped
        by the work, e.g. `min(len(peer.received), size)`) and no `timeout`, there is no
        total: only progress is bounded. How long a transfer takes depends on how the
        implementation chunks it and on a slow application, never on the suite; a capped
        count still bounds the wait, by the work times `stall`.
        """
        __tracebackhide__ = True
        peers = list(peers)
        limit = self._limit(timeout, stall, progress)
        deadline = Deadline(limit)
        watch = _ProgressWatch(peers, self.rec, stall, progress)

        def done() -> bool:
            return until() or watch.stalled()

        with self._watchdog.paused():
            if not drive(peers, done, deadline):
                # No peer has I/O left to do: what remains depends on the server alone.
                while not done() and not deadline.expired:
                    self.rec.wait_for(done, min(deadline.remaining(), stall or limit))
        if until():
            return
        raise ConformanceFailure(
            clause, _within(expected, limit, stall),
            watch.why() + "; ".join(repr(p) for p in peers),
            render_timeline(self.rec.trace(), list(session_ids) or None),
        )

    def _limit(self, timeout: float | None, stall: float | None,
               progress: Callable[[], int] | None) -> float:
        if timeout is not None:
            return timeout
        return math.inf if stall is not None and progress is not None else self.timeouts.io

    def wait(
        self, predicate: Callable[[], bool], *, clause: str, expected: str,
        actual: str | Callable[[], str] = "it did not happen", timeout: float | None = None,
        session_ids: Iterable[int] = (), stall: float | None = None,
        progress: Callable[[], int] | None = None,
    ) -> None:
        """Wait for `predicate` (re-checked on every recorded event); fail on the deadline --
        or, with `stall`, as soon as nothing was recorded for that many seconds (as `drive`,
        and like it without a total when `progress` is given)."""
        __tracebackhide__ = True
        limit = self._limit(timeout, stall, progress)
        deadline, watch = Deadline(limit), _ProgressWatch([], self.rec, stall, progress)
        with self._watchdog.paused():
            while not (deadline.expired or watch.stalled()):
                if self.rec.wait_for(predicate, min(stall or limit, deadline.remaining())):
                    return
        found = actual() if callable(actual) else actual
        ids = list(session_ids) or None
        raise ConformanceFailure(
            clause, _within(expected, limit, stall), watch.why() + found,
            render_timeline(self.rec.trace(), ids),
        )

    def released(self, sid: int, *, clause: str, timeout: float | None = None,
                 why: str = "") -> None:
        """Wait for on_release(sid)."""
        __tracebackhide__ = True
        self.wait(lambda: self.rec.is_released(sid), clause=clause,
                  expected=f"on_release({sid}){' ' + why if why else ''}",
                  actual=f"session {sid} was not released",
                  timeout=timeout, session_ids=[sid])

    def send(self, sid: int, data: bytes) -> bool:
        """send(), recorded, which must return at once whether or not the peer reads (S6).

        For sends whose peer may not be reading (a paused peer, megabytes beyond what the
        kernel buffers): a send() that blocks fails S6 after `Timeouts.call`, naming the
        call, instead of stalling the test thread until the watchdog fires.
        """
        __tracebackhide__ = True
        outcome, stuck = bounded_call(partial(self.rec.send, sid, data), self.timeouts.call)
        if stuck is not None:
            raise self.fail("S6", f"send({sid}, {len(data)} bytes) to return at once, whether "
                            "or not its peer reads", f"it blocked for {self.timeouts.call:g} s",
                            [sid])
        if isinstance(outcome, BaseException):
            raise outcome
        return bool(outcome)

    def fill_queue(self, sid: int, chunk: int = 64 << 10) -> int:
        """send() `chunk`-byte blocks to a session whose peer is not reading until one returns
        False; returns the bytes accepted.

        Fails S6 if a send() blocks, S7 if far more than the queue limit plus what the kernel
        can buffer was accepted without a False.
        """
        __tracebackhide__ = True
        ceiling = self.config.send_queue_limit + 8 * KERNEL_BUFFERED
        accepted = 0
        while accepted <= ceiling:
            if not self.send(sid, make_payload(chunk, accepted)):
                return accepted
            accepted += chunk
        raise self.fail("S7", f"send() to return False before {ceiling} bytes were queued to a "
                        f"peer that reads nothing (send_queue_limit="
                        f"{self.config.send_queue_limit})", f"{accepted} bytes were accepted",
                        [sid])

    def send_eventually(self, sid: int, data: bytes, *, clause: str, expected: str) -> None:
        """send() until it returns True, within the I/O deadline.

        For "succeeds again once the queue drains" (S7): the peer may have read every byte
        before the implementation has done its accounting (a writer thread, a completion
        still in a port's queue), so the contract allows a short delay. Retries back off
        from 1 ms to 50 ms; each attempt is in the timeline.
        """
        __tracebackhide__ = True
        deadline, pause, wait = Deadline(self.timeouts.io), 0.001, threading.Event()
        while not self.rec.send(sid, data):
            if deadline.expired:
                raise self.fail(clause, f"{expected} (within {deadline.seconds:g} s)",
                                "send() kept returning False", [sid])
            wait.wait(min(pause, deadline.remaining()))  # backing off between attempts
            pause = min(pause * 2, 0.05)

    def settle(self, peer: Peer, *, inbound_complete: bool = False,
               outbound_complete: bool = False) -> None:
        """Record what `peer` sent and received, for the S3/S4 check at the end."""
        sid = self.session(peer)
        self.streams.append(Stream(sid, bytes(peer.sent), inbound_complete,
                                   bytes(peer.received), outbound_complete))

    def fail(self, clause: str, expected: str, actual: str,
             session_ids: Iterable[int] | None = None) -> ConformanceFailure:
        """A failure for a check the test makes itself; `raise sc.fail(...)`."""
        return ConformanceFailure(clause, expected, actual,
                                  render_timeline(self.rec.trace(), session_ids))

    # ---- the end

    def check(self, *, final: bool = False) -> None:
        """Judge S1-S4 on the trace so far (and S2 completeness if `final`)."""
        __tracebackhide__ = True
        trace = self.rec.trace()
        violations = check_trace(trace, self.streams, final=final)
        if violations:
            raise ConformanceFailure.from_violations(violations, trace)

    def stop(self) -> None:
        """stop() within its deadline; then every connected session must be released (S11)."""
        __tracebackhide__ = True
        if self.stopped:
            return
        self.stopped = True
        limit = self.timeouts.stop(self.config)
        self.rec.record(Kind.STOP, "the test calls stop()")
        with self._watchdog.paused():
            outcome, thread = bounded_call(self.server.stop, limit)
        if thread is not None:
            self.stuck, self.hung = thread, ("stop()", "S11")
            raise self.fail("S11", f"stop() to return within {limit:g} s",
                            f"it was still running, at:\n{stack_of(thread)}")
        if isinstance(outcome, BaseException):
            raise self.fail("S11", "stop() to return normally",
                            f"it raised {type(outcome).__name__}: {outcome}") from outcome
        trace = self.rec.trace()
        connected = {e.session_id for e in trace if e.kind is Kind.CONNECT}
        missing = sorted(s for s in connected if s is not None and not self.rec.is_released(s))
        if missing:
            raise ConformanceFailure(
                "S11", "on_release for every session before stop() returned",
                f"no on_release for {', '.join(map(str, missing[:10]))}"
                f"{' ...' if len(missing) > 10 else ''} when stop() returned",
                render_timeline(trace, missing),
            )

    def _finish(self) -> None:
        __tracebackhide__ = True
        try:
            self.stop()
        finally:
            self._close_peers()
        self.check(final=True)

    def _add_trace_violations(self, failure: ConformanceFailure) -> None:
        """A failure also names what the trace so far shows broken (S1-S4, S12's causes):
        often the first symptom, such as the innocent session a late completion ended."""
        failure.add(check_trace(self.rec.trace(), self.streams, final=False))

    def _cleanup(self) -> threading.Thread | None:
        """After a failure: stop and close quietly; returns the thread of a call into the
        server that never returned (this stop(), or the start() or stop() that failed)."""
        if not self.stopped:
            self.stopped = True
            stuck = None
            with self._watchdog.paused(), suppress(SuiteEnvironmentError):
                # SuiteEnvironmentError: no thread to stop it in; the failure says so already
                _, stuck = bounded_call(self.server.stop, self.timeouts.stop(self.config))
            self.stuck = self.stuck or stuck
        self._close_peers()
        return self.stuck

    def _close_peers(self) -> None:
        """At the end, after stop(): abort rather than close, as nothing is left to check on
        these connections. A graceful close here would leave a TIME_WAIT socket behind for
        each one (60 s on Linux); an RST leaves none, on either side."""
        for p in self.peers:
            p.abort()


def _record_fault(rec: Recorder, fault: str, text: str, session_id: int | None) -> None:
    """An injected fault into the timeline: a RESET is a reason for its session to end (S2)."""
    kind = Kind.FAULT_RESET if fault == Fault.RESET.value else Kind.FAULT
    rec.record(kind, text, session_id=session_id)


def _is_address(peer: object, port: int) -> bool:
    """Whether on_connect's `peer` names the suite's client: host 127.0.0.1 -- as a string,
    also in its IPv4-mapped IPv6 form from a dual-stack socket -- and the client's port."""
    if not isinstance(peer, tuple | list) or len(peer) < 2 or not isinstance(peer[0], str):
        return False
    try:
        host = ipaddress.ip_address(peer[0].split("%")[0])
    except ValueError:
        return False
    if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
        host = host.ipv4_mapped
    return host == ipaddress.IPv4Address("127.0.0.1") and peer[1] == port \
        and isinstance(peer[1], int)


def _within(expected: str, limit: float, stall: float | None) -> str:
    """`expected`, with the deadline it was given: a total, or a bound on progress."""
    if math.isinf(limit):
        return f"{expected} (progress at least every {stall:g} s)"
    return f"{expected} (within {limit:.3g} s)"


class _ProgressWatch:
    """Tells when nothing has moved for `stall` seconds: by default neither the peers' bytes
    nor the server's callbacks; with `progress`, that count."""

    def __init__(self, peers: list[Peer], rec: Recorder, stall: float | None,
                 progress: Callable[[], int] | None = None) -> None:
        self.peers, self.rec, self.stall = peers, rec, stall
        self.progress = progress
        self.last = self._count()
        self.since = time.monotonic()

    def _count(self) -> int:
        if self.progress is not None:
            return self.progress()
        return len(self.rec.events) + sum(len(p.sent) + len(p.received) for p in self.peers)

    def why(self) -> str:
        """The start of a failure's `actual` when the stall deadline passed, else ''."""
        if not self.stalled():
            return ""
        what = "no progress" if self.progress is not None else "nothing happened"
        return f"the deadline for progress passed: {what} for {self.stall:g} s; "

    def stalled(self) -> bool:
        if self.stall is None:
            return False
        now, count = time.monotonic(), self._count()
        if count != self.last:
            self.last, self.since = count, now
        return now - self.since >= self.stall
