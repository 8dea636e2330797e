"""Replaying a failing example: does it fail every time, or only under some schedules?

A failure here is one run of real threads and sockets, so the same example can fail on one
interleaving and pass on the next (a callback racing the loop, the kernel grouping bytes
differently). Before the report is written, the example that failed is run again a few times,
on its own, in the same process and with the same fixtures, and the failure is classed:

- *reproducible*: it failed on every replay -- start from its timeline;
- *schedule-sensitive*: at least one replay passed (or Hypothesis' own replay of the shrunk
  example did: `FlakyFailure`) -- read the timeline for the interleaving that broke it.

How an example is run again: for a `@given` property, `Recorder` wraps the test's
`.hypothesis.inner_test` (the hook Hypothesis documents for wrapping each example, as
pytest-trio does) and keeps a copy of the arguments of the last call that raised -- the
example Hypothesis reports, whether it shrank it, stopped shrinking (`ShrinkingStopped`) or
it was an `@example`. A replay runs those arguments as the one explicit example of a fresh
Hypothesis test (no database, no generation, no shrinking), so `event()` and `note()` work as
in the run. A test without `@given` is run again whole (`item.runtest()`).

The cost is bounded: at most `replays` runs per failure, stopping at the first pass (the class
is known then), none after a server wedged (a stuck thread would only pile up more), and at
most `budget` seconds of replays per process.
"""

from __future__ import annotations

import copy
import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure

__all__ = ["NOT_REPLAYED", "REPRODUCIBLE", "SCHEDULE_SENSITIVE", "Recorder", "Replayer"]

REPRODUCIBLE = "reproducible"
SCHEDULE_SENSITIVE = "schedule-sensitive"
NOT_REPLAYED = "not replayed"

# Seconds of replays one process may spend, times --conformance-timeout-scale: a failing
# example usually waits out a deadline (2-5 s), so this is some ten failures' worth.
BUDGET = 60.0

_REPLAY_SETTINGS = settings(
    database=None, phases=[Phase.explicit], deadline=None, print_blob=False,
    verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
)


class Recorder:
    """Wraps a property's inner test; keeps the drawn arguments of the last call that raised."""

    def __init__(self, inner: Callable[..., Any], fixtures: set[str]) -> None:
        self.inner = inner
        self.fixtures = fixtures
        self.signature = inspect.signature(inner)
        self.failing: dict[str, Any] | None = None  # drawn arguments, as they were passed
        self.fixture_values: dict[str, Any] = {}

    def wrapper(self) -> Callable[..., Any]:
        @functools.wraps(self.inner)
        def record(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # the failure is the test's, not this wrapper's
            try:
                bound = self.signature.bind(*args, **kwargs).arguments
            except TypeError:
                bound = None
            drawn = None
            if bound is not None:
                drawn = {k: _copy(v) for k, v in bound.items() if k not in self.fixtures}
            try:
                return self.inner(*args, **kwargs)
            except BaseException:
                if bound is not None:
                    self.failing = drawn
                    self.fixture_values = {k: v for k, v in bound.items() if k in self.fixtures}
                raise

        return record


def _copy(value: Any) -> Any:
    """A copy the test cannot change (it may append to a drawn list), or the value itself."""
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


@dataclass
class Replayer:
    """Replays failures for one process, within `replays` per failure and `budget` seconds."""

    replays: int
    budget: float
    spent: float = 0.0
    # (exception) -> ("failed" | "environment error" | "skipped", clauses it broke)
    judge: Callable[[BaseException], tuple[str, list[str]]] = field(
        default=lambda exc: ("failed", []))
    stop_after: Callable[[BaseException], bool] = field(default=lambda exc: False)

    def classify(self, item: pytest.Item, failure: BaseException,
                 recorder: Recorder | None) -> dict[str, Any]:
        """Replay the example behind `failure` and class it; the result goes into the report."""
        runs: list[dict[str, Any]] = []

        def result(cls: str, why: str) -> dict[str, Any]:
            return {"class": cls, "why": why, "runs": runs}

        if _flaky(failure):
            return result(SCHEDULE_SENSITIVE, "Hypothesis ran the failing example again and it "
                          "passed, or failed differently (FlakyFailure)")
        if self.stop_after(failure):
            return result(NOT_REPLAYED, "the server wedged: running it again would only "
                          "leave more stuck threads")
        verdict, _ = self.judge(failure)
        if verdict != "failed":
            return result(NOT_REPLAYED, f"not a verdict ({verdict})")
        if self.replays <= 0:
            return result(NOT_REPLAYED, "--conformance-replays=0")
        once = self._runner(item, recorder)
        if once is None:
            return result(NOT_REPLAYED, "the failing example was not recorded")
        for n in range(1, self.replays + 1):
            if self.spent >= self.budget:
                spent = f"this process spent its replay budget of {self.budget:g} s"
                if not runs:
                    return result(NOT_REPLAYED, spent)
                return result(REPRODUCIBLE, f"failed {len(runs)} of {len(runs)} replays; "
                              f"then {spent}")
            began = time.monotonic()
            try:
                once()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                outcome, clauses = self.judge(exc)
                wedged = self.stop_after(exc)
            else:
                outcome, clauses, wedged = "passed", [], False
            took = time.monotonic() - began
            self.spent += took
            runs.append({"outcome": outcome, "clauses": clauses, "seconds": round(took, 3)})
            if outcome == "passed":
                return result(SCHEDULE_SENSITIVE, f"replay {n} of {self.replays} passed")
            if outcome != "failed":
                return result(NOT_REPLAYED, f"replay {n}: {outcome}")
            if wedged:
                return result(REPRODUCIBLE, f"replay {n} wedged the server; replays stopped")
        return result(REPRODUCIBLE, f"failed {self.replays} of {self.replays} replays")

    def _runner(self, item: pytest.Item, recorder: Recorder | None) -> Callable[[], None] | None:
        if recorder is None:  # not a @given test: run it again whole
            return item.runtest
        if recorder.failing is None:
            return None
        return _explicit(recorder.inner, recorder.fixture_values, recorder.failing)


def _flaky(exc: BaseException) -> bool:
    if isinstance(exc, FlakyFailure):  # not FlakyStrategyDefinition: that is the test's draws
        return True
    failure = getattr(exc, "failure", None)
    return isinstance(failure, BaseException) and _flaky(failure)


def _explicit(inner: Callable[..., Any], fixtures: dict[str, Any],
              drawn: dict[str, Any]) -> Callable[[], None]:
    """Runs `drawn` as the one example of a fresh Hypothesis test, in a build context, with a
    fresh copy of the arguments each time."""

    def once(**kwargs: Any) -> None:
        inner(**fixtures, **kwargs)

    once.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in drawn])

    def run() -> None:
        test = given(**{n: st.just(v) for n, v in drawn.items()})(once)
        test = example(**{n: _copy(v) for n, v in drawn.items()})(test)
        _REPLAY_SETTINGS(test)()

    return run
