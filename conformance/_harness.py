"""Run one scenario against one implementation, under deadlines that name what they await.

    with harness.scenario(on_recv=echo) as sc:      # server started, recorder attached
        peer = sc.connect()
        sid = sc.session(peer)                      # waits for its on_connect
        peer.queue(b"hello"); peer.shut_write()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected="the peer to read EOF")
        sc.settle(peer, inbound_complete=True, outbound_complete=True)
    # on exit: stop() within its deadline, every session released (S11), and the whole trace
    # checked for S1-S4 (`_checker.check_trace`).

Every wait has a deadline from `Timeouts`, scaled by `--conformance-timeout-scale`, or a bound
on progress (`stall`); when one passes, the scenario fails with a `ConformanceFailure` naming
the clause, what was awaited and the timeline. A call into the implementation that never
returns (a deadlock) is caught by a watchdog alarm, which reports where the test thread was
stuck: it counts only the time spent outside the harness's own bounded waits, so a scenario of
thousands of connections or megabytes is not cut short by a total that ignores its size.
A start() or stop() that never returns wedges its server: that is a verdict (S10, S11) reported
at once (`ServerWedged`), and the implementation's remaining scenarios fail at once
(`ImplWedged`), so a run against a server that always hangs still ends within a deadline or two.
"""

from __future__ import annotations

import ipaddress
import math
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any

from hypothesis import event
from hypothesis.control import currently_in_test_context

from ._calls import bounded_call, stack_of
from ._checker import ConformanceFailure, Stream, check_trace, render_timeline
from ._environment import SuiteEnvironmentError, hint, is_environmental, somaxconn
from ._loading import Impl, bound_address
from ._peers import Deadline, Peer, accept_queue, drive
from ._strategies import KERNEL_BUFFERED, make_payload
from ._trace import Hook, Recorder
from .api import LISTEN_BACKLOG, ServerConfig, SessionServer
from .faults import FaultInjector, FaultPlan

__all__ = ["Harness", "ImplWedged", "Scenario", "ScenarioHang", "ServerWedged",
           "ShrinkingStopped", "StartFailed", "Timeouts"]

# Bytes a second that `Timeouts.flush` allows a flush to a reading peer (at scale 1).
FLUSH_RATE = 1 << 20


@dataclass(frozen=True)
class Timeouts:
    """Every deadline of the suite, in seconds, at `scale` 1. Generous on purpose: a correct
    implementation meets each one by orders of magnitude, so only a real bug trips them."""

    scale: float = 1.0

    def _s(self, seconds: float) -> float:
        return seconds * self.scale

    @property
    def start(self) -> float:
        return self._s(5.0)

    def stop(self, config: ServerConfig) -> float:
        """stop() may flush for `linger` before it aborts."""
        return self._s(5.0) + config.linger

    @property
    def release(self) -> float:
        """S5: with nothing queued, on_release follows the peer's FIN within one second."""
        return self._s(1.0)

    @property
    def io(self) -> float:
        """Any exchange of data on loopback: megabytes take milliseconds, so this is a
        hundredfold margin. It is also how long a failing example waits for bytes that were
        lost, and Hypothesis replays failing examples while it shrinks them."""
        return self._s(5.0)

    @property
    def call(self) -> float:
        """send() and disconnect() must return at once (S6, S13): microseconds, normally."""
        return self._s(2.0)

    @property
    def scenario(self) -> float:
        """The watchdog: how long the test thread may spend outside the harness's own bounded
        waits (connects, drive, wait, start() and stop()) -- in calls into the implementation
        and the test's own code. The waits are bounded each by its own deadline or stall, so
        the whole scenario is bounded by a sum that grows with its work."""
        return self._s(60.0)

    def flush(self, nbytes: int) -> float:
        """A `linger` under which a flush of `nbytes` to a peer that reads as fast as it can
        always completes: the I/O deadline plus FLUSH_RATE bytes a second, a thousandfold
        below loopback. For scenarios that require every accepted byte to arrive; a flush
        that stops moving is caught by a stall long before this."""
        return self.io + self._s(nbytes / FLUSH_RATE)


class ScenarioHang(BaseException):
    """The watchdog fired: the test thread was stuck, most likely inside the implementation.

    A BaseException so that Hypothesis does not try to shrink a hang by re-running it.
    """


class StartFailed(ConformanceFailure):
    """start() hung or raised: a server that does not start accepts nobody (S10). The test's
    own checks never ran, so its other clauses get no verdict from it."""


class ServerWedged(BaseException):
    """A call into the server never returned -- start() or stop(), in the scenario itself or
    in the cleanup after another failure: the server is stuck (a deadlock, most likely), so
    re-running examples to shrink the failure would only pile up stuck threads. A
    BaseException, so Hypothesis reports at once instead of shrinking.

    `failure` is the scenario's own failure; its clauses and `clause`, the clause of the call
    that hung (S11 for stop(), S10 for start()), are the verdict. `stop_stack`: where stop()
    was stuck when it hung in the cleanup, after `failure` (None: `failure` is the hang).
    """

    def __init__(self, failure: BaseException, stop_stack: str | None = None,
                 clause: str = "S11") -> None:
        self.failure = failure
        self.clause = clause
        after = ("" if stop_stack is None else
                 f"And then stop() did not return either. stop() was at:\n{stop_stack}\n")
        super().__init__(
            f"{failure}\n\n{after}The server is wedged: a thread stuck inside it cannot be "
            f"stopped, so no further examples were run, and the remaining tests of this "
            f"implementation fail at once, pointing here ({ImplWedged.__name__})."
        )


class ImplWedged(BaseException):
    """Not run: an earlier scenario of this implementation wedged its server (`ServerWedged`).

    Every scenario ends in stop(), so each later test would wait out the same deadline and
    leave one more stuck server behind, whose threads may spin or hold locks and disturb the
    verdicts that follow. The test fails at once instead, charged to `clause` (the hung
    call's), with a pointer to the first failure, which has what was awaited and the
    timeline. A BaseException, so Hypothesis does not replay it.
    """

    def __init__(self, impl: str, first: str, clause: str) -> None:
        self.clause = clause
        super().__init__(
            f"{clause}: not run against {impl}: a server of it is wedged since {first}. "
            f"The remaining tests of {impl} fail at once; that test's failure has what was "
            f"awaited and the timeline."
        )


class ShrinkingStopped(BaseException):
    """A failure found while Hypothesis was re-running failing examples to shrink them, after
    the test had spent its shrink budget (`Harness.shrink_budget`) on failing examples.

    Most failing examples here wait out a deadline -- bytes that never come, a release that
    never happens -- so each costs seconds, and shrinking one bug could take Hypothesis' own
    limit of five minutes. A BaseException, so Hypothesis reports this example at once: it
    fails, it is no larger than the first one found, but it may not be the smallest.
    `failure` is the scenario's own failure; its clauses are the verdict.
    """

    def __init__(self, failure: BaseException, spent: float, budget: float) -> None:
        self.failure = failure
        super().__init__(
            f"{failure}\n\nShrinking stopped here: this test had spent {spent:.0f} s on failing "
            f"examples (the budget is {budget:g} s, as most of them wait out a deadline). This "
            f"example fails; a smaller one may exist: --hypothesis-profile=thorough shrinks "
            f"without a budget."
        )


class Harness:
    """Scenarios against one implementation (the `conformance` fixture).

    `shrink_budget`: seconds of failing scenarios one test may spend (while Hypothesis
    shrinks) before the next failure is reported as it stands (`ShrinkingStopped`); None: no
    budget. The plugin calls `begin_test()` before each test.
    """

    def __init__(self, impl: Impl, timeouts: Timeouts,
                 shrink_budget: float | None = None,
                 wedged: dict[str, tuple[str, str]] | None = None) -> None:
        self.impl = impl
        self.timeouts = timeouts
        self.shrink_budget = shrink_budget
        self._failing = 0.0  # seconds spent in failing scenarios in this test
        # impl name -> (where its first server wedged, the hung call's clause); shared by
        # every Harness of one run (the plugin passes one dict), so later tests fail fast.
        self.wedged: dict[str, tuple[str, str]] = {} if wedged is None else wedged
        self._test = "an earlier test"

    def begin_test(self, test: str = "") -> None:
        self._failing = 0.0
        self._test = test or "an earlier test"

    @contextmanager
    def scenario(
        self,
        *,
        on_connect: Hook | None = None,
        on_recv: Hook | None = None,
        on_release: Hook | None = None,
        faults: FaultPlan | None = None,
        **config: Any,
    ) -> Iterator[Scenario]:
        """A started server with a recording handler; stopped and checked on exit.

        `faults`: played on the server's session sockets if it opts in (`inject_faults`,
        see `conformance.faults`); ignored for servers that do not.
        """
        __tracebackhide__ = True
        wedge = self.wedged.get(self.impl.name)
        if wedge is not None:
            raise ImplWedged(self.impl.name, *wedge)
        sc = Scenario(self, Recorder(on_connect, on_recv, on_release), self.impl.config(**config),
                      faults)
        began = time.monotonic()
        with _watchdog(self.timeouts.scenario, sc.rec) as sc._watchdog, _thread_deaths(sc.rec):
            try:
                sc._start()
                yield sc
                sc._finish()  # stop(), S11 and the final trace check fail like the rest
            except BaseException as failure:
                if isinstance(failure, ConformanceFailure):
                    sc._add_trace_violations(failure)
                stuck = sc._cleanup()
                if stuck is not None:
                    self._wedge(sc)
                if isinstance(failure, RuntimeError) and is_environmental(failure):
                    # A thread the test itself could not start: the machine's limit.
                    raise SuiteEnvironmentError("starting a thread of the test", failure,
                                                hint(failure)) from failure
                if stuck is not None and not isinstance(
                        failure, ScenarioHang | ServerWedged | SuiteEnvironmentError):
                    hung = sc.hung  # the failure is that call hanging, or came before it
                    raise ServerWedged(failure, None if hung else stack_of(stuck),
                                       hung[1] if hung else "S11") from failure
                self._failing += time.monotonic() - began
                budget = self.shrink_budget
                if isinstance(failure, Exception) and budget is not None \
                        and self._failing > budget:
                    raise ShrinkingStopped(failure, self._failing, budget) from failure
                raise
        if sc.faults is not None and currently_in_test_context():
            kinds = sorted(k for k, n in sc.faults.injected.items() if n)
            event(f"faults injected: {', '.join(kinds) or 'none'}")  # --hypothesis-show-statistics

    def _wedge(self, sc: Scenario) -> None:
        """Remember the first wedged server of this implementation (see ImplWedged)."""
        call, clause = sc.hung or ("stop()", "S11")
        self.wedged.setdefault(self.impl.name, (f"{self._test}, whose {call} never returned",
                                                clause))


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
                faults, lambda text, sid, ends: rec.note(text, session_id=sid, ends=ends),
                partial(rec.peer_order, timeout=harness.timeouts.io))
            inject(self.faults)
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.peers: list[Peer] = []
        self.streams: list[Stream] = []
        self.stopped = False
        self._watchdog = _Watchdog()  # the scenario's, once it runs (Harness.scenario)
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
        self.rec.note("the test calls stop()", ends=True)
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
        connected = {e.session_id for e in trace if e.kind.name == "CONNECT"}
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


# ---- threads that die


@contextmanager
def _thread_deaths(rec: Recorder) -> Iterator[None]:
    """Record every thread that dies of an exception during the scenario (S12: an error ends
    at most one session; a dead worker or event loop stops serving all of them). The
    previous `threading.excepthook` still runs, so the traceback is printed as usual."""
    previous = threading.excepthook

    def died(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            name = args.thread.name if args.thread is not None else "a thread"
            rec.note(f"thread {name} died", error=f"{args.exc_type.__name__}: {args.exc_value}")
        previous(args)

    threading.excepthook = died
    try:
        yield
    finally:
        threading.excepthook = previous


# ---- the watchdog


class _Watchdog:
    """The scenario's alarm, paused while the test thread is inside one of the harness's own
    bounded waits: those end by their deadline or stall, and a scenario with thousands of
    connections spends minutes in them. What is left to catch is a call that never returns."""

    def __init__(self, armed: bool = False) -> None:
        self.armed = armed
        self._depth = 0
        self._left = 0.0

    @contextmanager
    def paused(self) -> Iterator[None]:
        if not self.armed or threading.current_thread() is not threading.main_thread():
            yield
            return
        if self._depth == 0:
            self._left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self.armed:
                # 0 left: the alarm was due as the wait began; let it fire now.
                signal.setitimer(signal.ITIMER_REAL, max(self._left, 1e-3))


@contextmanager
def _watchdog(seconds: float, rec: Recorder) -> Iterator[_Watchdog]:
    """SIGALRM once the test thread has spent `seconds` outside the harness's bounded waits:
    raise ScenarioHang in the test thread, showing where it was.

    Only the main thread can receive signals, so elsewhere (rare: a user's threaded runner)
    there is no watchdog and the per-wait deadlines are the only bound.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _Watchdog()
        return

    def fire(signum: int, frame: FrameType | None) -> None:
        where = "".join(traceback.format_stack(frame)[-10:]) if frame else "(unknown)"
        raise ScenarioHang(
            f"the scenario did not finish: the test thread was stuck for {seconds:g} s "
            f"outside the suite's own bounded waits "
            f"(a deadlock in send()/disconnect()? see S6, S13). It was at:\n{where}\n"
            f"timeline:\n{render_timeline(rec.trace())}"
        )

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    dog = _Watchdog(armed=True)
    try:
        yield dog
    finally:
        dog.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
