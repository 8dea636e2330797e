"""Item 11 of issue 9: the listen backlog S10 needs is stated, and a smaller one is an S10
verdict that names it.

`test_s10_burst_that_arrives_while_the_server_is_busy` connects up to `LISTEN_BACKLOG`
peers while the server sits in on_connect, so the whole burst waits in the backlog. A select
server with listen(50) -- correct in every other way -- used to fail with a raw TimeoutError
from a peer's connect(). Here the property's body runs with its largest burst (no Hypothesis:
one example, deterministic) against backlogs of 50 and of exactly `LISTEN_BACKLOG`.
"""

from __future__ import annotations

import pytest

from conformance.api import LISTEN_BACKLOG

from ._support import run, summary_row

pytest_plugins = ["pytester"]

SMALL_BACKLOG = """
from impls.select_ import SelectServer

BACKLOG = {backlog}


class SmallBacklog(SelectServer):
    def start(self, handler, host="127.0.0.1", port=0):
        bound = super().start(handler, host, port)
        self._listener.listen(BACKLOG)  # Linux lets listen() again change the backlog
        return bound


make_server = SmallBacklog
"""

FULL_BURST = """
import pytest

from conformance.api import LISTEN_BACKLOG
from conformance.suite.test_s10_accept import (
    test_s10_burst_that_arrives_while_the_server_is_busy as busy_burst,
)


@pytest.mark.clause("S10")
def test_largest_busy_burst(conformance):
    busy_burst.hypothesis.inner_test(conformance, burst=LISTEN_BACKLOG)
"""

# Each connect() beyond the backlog waits out the I/O deadline: 1 s at this scale.
SCALE = "--conformance-timeout-scale=0.2"


def test_a_backlog_below_the_burst_fails_s10_naming_the_backlog(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(small=SMALL_BACKLOG.format(backlog=50), test_burst=FULL_BURST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=small:make_server", SCALE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*ConformanceFailure: S10 accept*",
        "*expected: connect() to * to complete within 1 s*",
        "*accept queue held 51 connections and took no more*a backlog of 50*The listen "
        f"backlog must hold {LISTEN_BACKLOG} pending connections*",
    ])
    assert "TimeoutError" not in result.stdout.str()
    row = summary_row(result, "small:make_server")
    assert row["S10"] == "FAIL", row


def test_the_stated_backlog_is_enough(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(small=SMALL_BACKLOG.format(backlog=LISTEN_BACKLOG),
                        test_burst=FULL_BURST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=small:make_server", SCALE)
    result.assert_outcomes(passed=1)


CAPPED = """
import importlib

import pytest

from conformance.api import LISTEN_BACKLOG
from conformance.suite.test_s10_accept import (
    test_s10_burst_that_arrives_while_the_server_is_busy as busy_burst,
)


@pytest.mark.clause("S10")
def test_largest_busy_burst(conformance, monkeypatch):
    harness = importlib.import_module("conformance._scenario")  # the module in use
    monkeypatch.setattr(harness, "somaxconn", lambda: 64)
    busy_burst.hypothesis.inner_test(conformance, burst=LISTEN_BACKLOG)
"""


def test_a_machine_that_caps_the_backlog_is_an_environment_error(
        pytester: pytest.Pytester) -> None:
    """net.core.somaxconn below 100 caps every server's backlog: not the server's fault."""
    pytester.makepyfile(small=SMALL_BACKLOG.format(backlog=50), test_burst=CAPPED)
    pytester.syspathinsert()
    result = run(pytester, "--impl=small:make_server", SCALE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*net.core.somaxconn = 64, below the 100 pending*"])
    assert summary_row(result, "small:make_server")["S10"] == "env"
