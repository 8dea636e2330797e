"""The run protocol: how a scenario ends when it cannot end normally.

A scenario's own checks fail with a `ConformanceFailure`. What is here handles the rest, so
that a run against any implementation ends, within a deadline or two, with a verdict:

- a watchdog alarm (`watchdog`) catches a call into the implementation that never returns
  (a deadlock), counting only the time the test thread spends outside the harness's own
  bounded waits, so a scenario of thousands of connections or megabytes is not cut short by
  a total that ignores its size; it raises `ScenarioHang`, showing where the thread was;
- `thread_deaths` records every thread of the implementation that dies of an exception (S12);
- the control exceptions: `StartFailed` (start() hung or raised: S10), `ServerWedged` (start()
  or stop() never returned: the server is stuck; a verdict at once), `ImplWedged` (the
  implementation's remaining scenarios fail at once) and `ShrinkingStopped` (the test spent
  its shrink budget). All but StartFailed are BaseExceptions, so Hypothesis reports them at
  once instead of re-running a hang to shrink it.

`_harness.Harness` applies this protocol to each `Scenario`.
"""

from __future__ import annotations

import signal
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ._checker import ConformanceFailure, render_timeline
from ._trace import Kind, Recorder

__all__ = ["ImplWedged", "ScenarioHang", "ServerWedged", "ShrinkingStopped", "StartFailed",
           "Watchdog", "thread_deaths", "watchdog"]


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


# ---- threads that die


@contextmanager
def thread_deaths(rec: Recorder) -> Iterator[None]:
    """Record every thread that dies of an exception during the scenario (S12: an error ends
    at most one session; a dead worker or event loop stops serving all of them). The
    previous `threading.excepthook` still runs, so the traceback is printed as usual."""
    previous = threading.excepthook

    def died(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            name = args.thread.name if args.thread is not None else "a thread"
            rec.record(Kind.THREAD_DIED, f"thread {name} died",
                       error=f"{args.exc_type.__name__}: {args.exc_value}")
        previous(args)

    threading.excepthook = died
    try:
        yield
    finally:
        threading.excepthook = previous


# ---- the watchdog


class Watchdog:
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
def watchdog(seconds: float, rec: Recorder) -> Iterator[Watchdog]:
    """SIGALRM once the test thread has spent `seconds` outside the harness's bounded waits:
    raise ScenarioHang in the test thread, showing where it was.

    Only the main thread can receive signals, so elsewhere (rare: a user's threaded runner)
    there is no watchdog and the per-wait deadlines are the only bound.
    """
    if threading.current_thread() is not threading.main_thread():
        yield Watchdog()
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
    dog = Watchdog(armed=True)
    try:
        yield dog
    finally:
        dog.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
