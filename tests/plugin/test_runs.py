"""Runs against a user's implementation: ids, header, the clause table, the JSON report."""

from __future__ import annotations

import json

import pytest

from conformance._clauses import CLAUSES

from ._support import LOSSY, MYIMPL, S4_TEST, S5_TEST, run, summary_row

pytest_plugins = ["pytester"]


def test_user_implementation_passes_and_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myimpl=MYIMPL, test_s5=S5_TEST)
    pytester.syspathinsert()
    result = run(pytester, "-v", "--impl=myimpl:make_server", "--conformance-report=out.json")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_s5.py::test_fin_releases[[]myimpl:make_server[]] PASSED*"])
    header = [line for line in result.outlines if line.startswith("conformance: impl=")]
    assert header == [
        "conformance: impl=myimpl:make_server; timeout scale 1; hypothesis profile conformance"
    ], result.outlines
    row = summary_row(result, "myimpl:make_server")
    assert row == {c: "ok" if c == "S5" else "-" for c in CLAUSES}, row
    result.stdout.fnmatch_lines(["verdicts written to out.json"])

    report = json.loads((pytester.path / "out.json").read_text())
    assert report["failures"] == []
    assert report["verdicts"] == {
        "myimpl:make_server": {c: "passed" if c == "S5" else "not run" for c in CLAUSES}
    }


def test_conftest_impl_fixture_overrides_without_the_option(pytester: pytest.Pytester) -> None:
    """Like anyio_backend: one `impl` in conftest.py; no `--impl`, so one run, not one per
    built-in, with the fixed ServerConfig field shown in the name."""
    pytester.makeconftest(
        """
        import pytest


        @pytest.fixture(scope="module")
        def impl():
            return ("select", {"linger": 0.5})
        """
    )
    pytester.makepyfile(
        test_s5=S5_TEST
        + """

def test_override_reaches_the_scenario(conformance):
    assert conformance.impl.name == "select(linger=0.5)"
    with conformance.scenario(linger=3.0) as sc:
        assert sc.config.linger == 0.5
"""
    )
    result = run(pytester, "-v")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_s5.py::test_fin_releases PASSED*"])
    assert not any(line.startswith("conformance: impl=") for line in result.outlines)
    assert summary_row(result, "select(linger=0.5)")["S5"] == "ok"


def test_conftest_override_and_option_together_warn(pytester: pytest.Pytester) -> None:
    """A conftest.py `impl` wins over --impl; the run says so instead of silently testing
    something else than the command line named."""
    pytester.makeconftest(
        """
        import pytest


        @pytest.fixture(scope="module")
        def impl():
            return "select"
        """
    )
    pytester.makepyfile(test_s5=S5_TEST)
    result = run(pytester, "--impl=blocking")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*--impl=blocking is ignored here*conftest.py overrides*"])


def test_broken_implementation_gets_a_conformance_verdict(pytester: pytest.Pytester) -> None:
    """send() returns True and sends nothing: the failure names S4 with expected, actual and
    the timeline, and the table and the JSON charge it to S4."""
    pytester.makepyfile(lossy=LOSSY, test_s4=S4_TEST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=lossy:make_server", "--conformance-report=out.json")

    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*S4 outbound stream: The bytes of the send() calls that returned True reach the peer*",
        "*expected: the peer to receive the 100 accepted bytes (within *",
        "*actual:*<Peer :* sent=0 received=0 *",
        "*timeline (seconds since the scenario began, thread, event):*",
        "*send(* 100 bytes*",
    ])
    assert summary_row(result, "lossy:make_server")["S4"] == "FAIL"

    report = json.loads((pytester.path / "out.json").read_text())
    assert report["verdicts"]["lossy:make_server"]["S4"] == "failed"
    [failure] = report["failures"]
    assert failure["impl"] == "lossy:make_server"
    assert failure["clauses"] == ["S4"]
    assert failure["nodeid"] == "test_s4.py::test_accepted_bytes_arrive[lossy:make_server]"


CLAUSE_TESTS = """
import pytest


@pytest.mark.clause("S4")
def test_s4():
    pass


@pytest.mark.clause("S5")
def test_s5():
    pass


@pytest.mark.clause("S4", "S5")
def test_s4_and_s5():
    pass


def test_unmarked():
    pass
"""


@pytest.mark.parametrize(
    ("args", "selected"),
    [
        (["--clause=S5"], ["test_s5", "test_s4_and_s5"]),
        (["--clause=s4"], ["test_s4", "test_s4_and_s5"]),
        (["--clause=S4,S5"], ["test_s4", "test_s5", "test_s4_and_s5"]),
        (["--clause=S4", "--clause=S5"], ["test_s4", "test_s5", "test_s4_and_s5"]),
        ([], ["test_s4", "test_s5", "test_s4_and_s5", "test_unmarked"]),
    ],
)
def test_clause_option_deselects_other_tests(
    pytester: pytest.Pytester, args: list[str], selected: list[str]
) -> None:
    pytester.makepyfile(test_marked=CLAUSE_TESTS)
    result = run(pytester, "-v", *args)
    result.assert_outcomes(passed=len(selected), deselected=4 - len(selected))
    ran = [line.split("::")[1].split()[0] for line in result.outlines if " PASSED" in line]
    assert ran == selected
