"""The `conformance` fixture: runs one `Scenario` against one implementation, under the run
protocol (`_run`) and the deadlines (`_timeouts`).

    with harness.scenario(on_recv=echo) as sc:      # server started, recorder attached
        ...                                         # the test: see `_scenario.Scenario`
    # on exit: stop() within its deadline, every session released (S11), and the whole trace
    # checked for S1-S4 (`_checker.check_trace`).

A failure of the scenario is reported as it stands, or -- when a call into the server never
returned -- as `ServerWedged`, after which the implementation's remaining scenarios fail at
once (`ImplWedged`); past the test's shrink budget, as `ShrinkingStopped`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import event
from hypothesis.control import currently_in_test_context

from ._calls import stack_of
from ._checker import ConformanceFailure
from ._environment import SuiteEnvironmentError, hint, is_environmental
from ._loading import Impl
from ._run import (
    ImplWedged,
    ScenarioHang,
    ServerWedged,
    ShrinkingStopped,
    thread_deaths,
    watchdog,
)
from ._scenario import Scenario
from ._timeouts import Timeouts
from ._trace import Hook, Recorder
from .faults import FaultPlan

__all__ = ["Harness"]


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
        with watchdog(self.timeouts.scenario, sc.rec) as sc._watchdog, thread_deaths(sc.rec):
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
