"""A hang is a verdict, not a usage error (issue #9, item 5).

A start() that hangs or raises, or a stop() that never returns, is the implementation's
failure: the run reports it on the clause concerned (S10, S11) with what was awaited, in the
table, the JSON and exit status 1 -- and finishes: the first wedged server makes the
remaining tests of that implementation fail at once, and the process exits even though a
stuck thread (a non-daemon one, for stop()) is still inside the implementation.

In subprocesses: the stuck threads never end.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ._support import S4_TEST, S5_TEST, START_HANGS, START_RAISES, STOP_HANGS, summary_row

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

# At scale 0.2: start() gets 1 s, stop() 1 s + the default linger of 2 s.
SCALE = "0.2"
# A run that waited out every test's deadline, or the threads at exit, would meet this.
RUN_LIMIT = 120


START_RAISED = ["*S10 accept:*", "*expected: start() to return the address it bound*",
                "*actual:*it raised OSError: no sockets today*"]
START_HUNG = ["*S10 accept:*", "*expected: start() to return the address it bound*(within 1 s)*",
              "*actual:*it was still running, at:*", "*The server is wedged*"]
STOP_HUNG = ["*S11 stop:*", "*expected: stop() to return within 3 s*",
             "*actual:*it was still running, at:*", "*The server is wedged*"]


@pytest.mark.parametrize(
    ("module", "clause", "expected", "wedges", "xdist"),
    [
        pytest.param(START_RAISES, "S10", START_RAISED, False, [], id="start-raises"),
        pytest.param(START_HANGS, "S10", START_HUNG, True, [], id="start-hangs"),
        pytest.param(STOP_HANGS, "S11", STOP_HUNG, True, [], id="stop-hangs"),
        # Each xdist worker wedges its own server, and each must exit, as the controller.
        pytest.param(STOP_HANGS, "S11", STOP_HUNG, True, ["-n", "2"], id="stop-hangs-xdist"),
    ],
)
def test_a_hang_is_a_clause_verdict(
    pytester: pytest.Pytester, module: str, clause: str, expected: list[str],
    wedges: bool, xdist: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This checkout's suite, not whichever one is installed.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(server=module, test_s5=S5_TEST, test_s4=S4_TEST,
                        test_more=S5_TEST.replace("test_fin_releases", "test_again"))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--impl=server:make_server",
        f"--conformance-timeout-scale={SCALE}", "--conformance-report=out.json",
        "--junitxml=junit.xml", *xdist, timeout=RUN_LIMIT,
    )
    output = "\n".join(result.outlines + result.errlines)

    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(expected, consecutive=False)
    row = summary_row(result, "server:make_server")
    assert row[clause] == "FAIL", row
    if clause == "S10":  # nothing ran: S4 and S5 get no verdict
        assert row["S4"] == row["S5"] == "-", row
    report = json.loads((pytester.path / "out.json").read_text())
    assert report["verdicts"]["server:make_server"][clause] == "failed"
    assert all(f["clauses"] == [clause] for f in report["failures"]), report["failures"]

    if wedges:
        # One server wedged per process; every later test of the impl fails at once, well
        # within one deadline, and points at the first failure.
        workers = 2 if xdist else 1
        wedged = [line for line in result.outlines if "not run against server:make_server" in line]
        assert len(wedged) >= 3 - workers, output
        assert all("whose " in line and "never returned" in line for line in wedged), wedged
        times = sorted(float(case.get("time", "0"))
                       for case in ET.parse(pytester.path / "junit.xml").iter("testcase"))
        assert all(t < 1.0 for t in times[: 3 - workers]), times
    if module is STOP_HANGS:  # its non-daemon thread would have kept the process alive
        assert any("exiting without waiting for them, status 1" in line
                   for line in result.errlines), output


def test_a_wedge_keeps_the_clauses_of_the_failure_before_it() -> None:
    """stop() hanging after another failure adds S11 to that failure's clauses; a failure that
    names no clause (an exception from the server) is still charged to the test's own."""
    from conformance._checker import ConformanceFailure
    from conformance._run import ImplWedged, ServerWedged, StartFailed
    from conformance.plugin import _broken_clauses, _not_run

    after_s9 = ServerWedged(ConformanceFailure("S9", "on_release(1)", "nothing"), "stack")
    assert _broken_clauses(after_s9, ["S9"]) == ["S9", "S11"]
    after_error = ServerWedged(RuntimeError("from the server"), "stack")
    assert _broken_clauses(after_error, ["S4", "S5"]) == ["S4", "S5", "S11"]
    start_hung = ServerWedged(StartFailed("S10", "start()", "hung"), None, "S10")
    assert _broken_clauses(start_hung, []) == ["S10"] and _not_run(start_hung)
    later = ImplWedged("impl", "test_x", "S11")
    assert _broken_clauses(later, []) == ["S11"] and _not_run(later)
    assert not _not_run(after_s9)
