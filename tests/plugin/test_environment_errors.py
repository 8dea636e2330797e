"""Item 10 of issue 9: a failure of the suite's own sockets is never a clause failure.

Back-to-back runs once filled the machine with TIME_WAIT sockets until the suite's peers got
EADDRINUSE, and a correct server was charged with failures of S3, S4, S9, S10 and S13. Here a
correct server (the select reference model) meets a peer that cannot get a local port or a
descriptor: the test is an ERROR with a hint, its clauses read "env" (never "FAIL", never
"ok"), the run fails, and Hypothesis does not shrink it (each re-run would hit the same wall).
"""

from __future__ import annotations

import json

import pytest

from ._support import run, summary_row

pytest_plugins = ["pytester"]

#: Every peer's connect() fails as on a machine out of local ports.
NO_PORTS = """
import errno
import socket

import pytest


@pytest.mark.clause("S5")
def test_fin_releases(conformance, monkeypatch):
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: errno.EADDRNOTAVAIL)
    with conformance.scenario() as sc:
        sc.connect()
"""

#: A property whose peers cannot get a descriptor; counts how often its body runs.
NO_DESCRIPTORS = """
import errno
import importlib
import socket

import pytest
from hypothesis import given, settings, strategies as st

RUNS = []


class NoDescriptors:
    def __getattr__(self, name):
        return getattr(socket, name)

    @staticmethod
    def socket(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")


@pytest.mark.clause("S3", "S4")
@settings(max_examples=20, database=None)
@given(n=st.integers(0, 100))
def test_echo(conformance, n):
    RUNS.append(n)
    with conformance.scenario() as sc:
        with pytest.MonkeyPatch.context() as mp:
            # At run time: the module the harness uses (in-process runs re-import it).
            peers = importlib.import_module("conformance._peers")
            mp.setattr(peers, "socket", NoDescriptors())
            sc.connect()


def test_ran_once():
    assert len(RUNS) == 1, RUNS
"""


def test_out_of_ports_is_an_environment_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_no_ports=NO_PORTS)
    report = pytester.path / "verdicts.json"
    result = run(pytester, "--impl=select", f"--conformance-report={report}")
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*SuiteEnvironmentError: environment error, not a verdict on the implementation*",
        "*The machine ran out of local ports: * TCP sockets are in TIME_WAIT*",
    ])
    assert "ConformanceFailure" not in result.stdout.str()
    row = summary_row(result, "select")
    assert row["S5"] == "env" and "FAIL" not in row.values(), row
    verdicts = json.loads(report.read_text())
    assert verdicts["verdicts"]["select"]["S5"] == "environment error"
    (failure,) = verdicts["failures"]
    assert failure["clauses"] == [] and "local ports" in failure["environment"], failure


def test_environment_errors_are_not_shrunk(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_no_fds=NO_DESCRIPTORS)
    result = run(pytester, "--impl=select", "-p", "no:randomly")
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines(["*file descriptors*Raise the limit (ulimit -n)*"])
    row = summary_row(result, "select")
    assert row["S3"] == row["S4"] == "env", row
