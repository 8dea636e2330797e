"""The harness's deadlines bound progress and stuck calls, not the size of the work.

A scenario of thousands of connections, or a transfer that a slow application makes take
minutes, must not fail on a total that ignores its size (issue 9); a call into the
implementation that never returns must still be caught. Against the select model, with
deadlines shortened (`Timeouts` at a small scale, a watchdog of 0.3 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from conformance._checker import ConformanceFailure
from conformance._harness import Harness
from conformance._loading import Impl
from conformance._run import ScenarioHang
from conformance._timeouts import Timeouts
from impls.select_ import SelectServer


@dataclass(frozen=True)
class ShortWatchdog(Timeouts):
    @property
    def scenario(self) -> float:
        return 0.3


def seconds_passed(seconds: float) -> Callable[[], bool]:
    until = time.monotonic() + seconds
    return lambda: time.monotonic() > until


def harness(timeouts: Timeouts) -> Harness:
    return Harness(Impl("select", SelectServer), timeouts)


def test_watchdog_catches_a_call_that_never_returns() -> None:
    stuck = threading.Event()  # stands for a call into the implementation that never returns
    with pytest.raises(ScenarioHang, match="outside the suite's own bounded waits"), \
            harness(ShortWatchdog()).scenario():
        stuck.wait(5.0)


def test_watchdog_ignores_time_in_the_harness_waits() -> None:
    # Waits of 0.4 s each, longer than the watchdog's 0.3 s: each is bounded on its own.
    with harness(ShortWatchdog()).scenario() as sc:
        for _ in range(2):
            peer = sc.connect()
            sid = sc.session(peer)
            sc.wait(seconds_passed(0.4), clause="S5",
                    expected="0.4 s to pass", timeout=0.5)
            peer.shut_write()
            sc.released(sid, clause="S5")


def test_progress_bounded_wait_has_no_total() -> None:
    # At scale 0.1 a total would be 0.5 s; progress every 50 ms for a whole second passes.
    with harness(Timeouts(scale=0.1)).scenario() as sc:
        begun = time.monotonic()
        sc.wait(lambda: time.monotonic() - begun > 1.0, clause="S3", expected="a second",
                stall=0.2, progress=lambda: int((time.monotonic() - begun) * 20))


def test_a_stall_says_the_deadline_for_progress_passed() -> None:
    with pytest.raises(ConformanceFailure) as failure, \
            harness(Timeouts(scale=0.1)).scenario() as sc:
        sc.wait(lambda: False, clause="S3", expected="bytes that never come",
                actual="0 bytes delivered", stall=0.2, progress=lambda: 0)
    text = str(failure.value)
    assert failure.value.clauses == ["S3"], text
    assert "expected: bytes that never come (progress at least every 0.2 s)" in text, text
    assert "actual:   the deadline for progress passed: no progress for 0.2 s; 0 bytes" in text
