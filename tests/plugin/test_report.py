"""`--conformance-report=DIR`, `--conformance-xfail=FILE` and the replays behind them.

The end-to-end tests run the suite as a user would, in a fresh process, against one reference
implementation and a mutant that fails at once (`m_s07_zero_limit_means_unlimited`: its S7
property's explicit example, no deadline to wait out), limited to that one property so that
each run takes seconds. The rest run small user tests in this process (`pytester`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from markupsafe import escape

from conformance._clauses import CLAUSES
from conformance._xfail import XfailList

from ._support import run, summary_row

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "conformance" / "report.schema.json").read_text())
MUTANT = "tests.mutants.m_s07_zero_limit_means_unlimited:make_server"
PROPERTY = "test_s07_limit_boundary"
SEED = "12345"


def suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The suite, in a fresh process with a fresh example database: select and the mutant,
    the one S7 property."""
    env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis")}
    cmd = [sys.executable, "-m", "pytest", "conformance", f"--impl=select,{MUTANT}",
           "--clause=S7", "-k", PROPERTY, "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def valid(report: dict[str, Any]) -> dict[str, Any]:
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in Draft202012Validator(SCHEMA).iter_errors(report)]
    assert not errors, errors
    return report


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    """One serial run with a report: (report.json, report.html, output)."""
    tmp = tmp_path_factory.mktemp("serial")
    proc = suite(tmp, "-p", "no:xdist", f"--hypothesis-seed={SEED}",
                 f"--conformance-report={tmp / 'out'}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    report = json.loads((tmp / "out" / "report.json").read_text())
    return report, (tmp / "out" / "report.html").read_text(), output


def test_report_of_a_failing_mutant(serial: tuple[dict[str, Any], str, str]) -> None:
    """The JSON is valid against its schema and names the mutant's S7 failure with its parts;
    the HTML shows the clause, the timeline and the command that reproduces it."""
    report, page, output = serial
    valid(report)
    assert report["schema_version"] == 1
    assert report["implementations"] == sorted(["select", MUTANT])
    assert report["verdicts"][MUTANT]["S7"] == "failed"
    assert report["verdicts"]["select"]["S7"] == "passed"
    assert report["verdicts"]["select"]["S1"] == "not run"
    (failure,) = report["failures"]
    assert failure["impl"] == MUTANT and failure["clauses"] == ["S7"] == [failure["clause"]]
    assert PROPERTY in failure["nodeid"] and failure["outcome"] == "failed"
    assert failure["expected"].startswith("send() of 1 bytes -> False")
    assert failure["actual"] == "it returned True"
    assert "on_connect(1," in failure["timeline"]
    assert failure["example"]["arguments"] == {"limit": "0"}
    # Hypothesis words it "Falsifying explicit example" before 6.16x, "Failing ..." since
    assert "explicit example" in failure["example"]["hypothesis"]
    replay = failure["replay"]
    assert replay["class"] == "reproducible", replay
    assert [r["outcome"] for r in replay["runs"]] == ["failed"] * 3
    command = shlex.split(failure["reproduce"])
    assert command[:3] == ["python", "-m", "pytest"] and command[3] == failure["nodeid"]
    assert f"--impl={MUTANT}" in command and f"--hypothesis-seed={SEED}" in command
    (cell,) = report["cells"][MUTANT]["S7"]
    assert cell == failure["nodeid"]
    assert next(t for t in report["tests"] if t["nodeid"] == cell)["failure"] == failure["id"]

    sentence = str(escape(CLAUSES["S7"].sentence))
    assert page.count(sentence) >= 2, "the S7 sentence, by the failure and in the clause list"
    assert str(escape(failure["timeline"])) in page
    assert str(escape(failure["reproduce"])) in page
    assert f'id="{failure["id"]}"' in page and f'href="#{failure["id"]}"' in page
    assert re.search(r'<td class="cell failed"[^>]*><a href="#cell-\d+-S7">FAIL</a>', page)
    # self-contained: nothing loaded from elsewhere, no script
    assert not re.search(r'<(script|link|img|iframe)\b|(src|href)="(https?:)?//', page)
    assert f"reproducible: {failure['nodeid']} (failed 3 of 3 replays)" in output


def test_the_reproduce_command_reproduces(serial: tuple[dict[str, Any], str, str],
                                          tmp_path: Path) -> None:
    (failure,) = serial[0]["failures"]
    env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis")}
    cmd = [sys.executable, *shlex.split(failure["reproduce"])[1:], "-p", "no:xdist",
           f"--conformance-report={tmp_path / 'again.json'}", "--conformance-replays=0"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-4000:]
    again = valid(json.loads((tmp_path / "again.json").read_text()))
    assert again["verdicts"] == {MUTANT: {c: "failed" if c == "S7" else "not run"
                                          for c in CLAUSES}}


def test_the_reproduce_command_of_the_installed_suite_holds_elsewhere(tmp_path: Path) -> None:
    """Run from a user's project (`--pyargs conformance`, the factory under `src/`), the command
    names the suite's module, not this machine's path to it (a CI artifact is read on another
    machine), and keeps `--impl-dir`; run again from that directory, it fails the same clause."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "mine.py").write_text(f"from {MUTANT.replace(':', ' import ')}\n")
    env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis"),
           "PYTHONPATH": str(ROOT)}  # this checkout's suite, whatever is installed
    options = ["-p", "no:cacheprovider", "-p", "no:xdist", "--conformance-replays=0"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conformance", "--impl=mine:make_server",
         "--impl-dir=src", "--clause=S7", "-k", PROPERTY, f"--hypothesis-seed={SEED}",
         f"--conformance-report={tmp_path / 'first.json'}", *options],
        cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    (failure,) = valid(json.loads((tmp_path / "first.json").read_text()))["failures"]
    command = shlex.split(failure["reproduce"])
    assert command[:5] == ["python", "-m", "pytest", "--pyargs",
                           f"conformance.suite.test_s06_s07_backpressure::{PROPERTY}"
                           "[mine:make_server]"], command
    assert "--impl-dir=src" in command and str(ROOT) not in failure["reproduce"], command

    again = subprocess.run(
        [sys.executable, *command[1:], f"--conformance-report={tmp_path / 'again.json'}",
         *options], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, (again.stdout + again.stderr)[-4000:]
    verdicts = valid(json.loads((tmp_path / "again.json").read_text()))["verdicts"]
    assert verdicts["mine:make_server"]["S7"] == "failed", verdicts


def test_a_two_worker_run_writes_the_same_report(serial: tuple[dict[str, Any], str, str],
                                                 tmp_path: Path) -> None:
    """Everything but the run's own facts (times, arguments, workers) and the texts of one
    scenario's run (its timeline's ports and times) is the same under pytest-xdist."""
    proc = suite(tmp_path, "-n", "2", f"--hypothesis-seed={SEED}",
                 f"--conformance-report={tmp_path / 'out'}")
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    parallel = valid(json.loads((tmp_path / "out" / "report.json").read_text()))
    assert parallel["run"]["workers"] == 2

    def same(report: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in report.items() if k not in ("run", "failures")}
        kept["failures"] = [
            {k: v for k, v in f.items() if k not in ("timeline", "example", "message")}
            | {"replay": [r["outcome"] for r in f["replay"]["runs"]]}
            for f in report["failures"]]
        return kept

    assert same(parallel) == same(serial[0])


def test_xfail_file_keeps_the_run_green_and_reports_what_passed(tmp_path: Path) -> None:
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(
        "# the mutant's bug is known\n"
        f"{MUTANT}::S7   # 0 means unlimited: issue 1\n"
        f"{PROPERTY}[select]  # wrongly listed: select passes it\n"
    )
    proc = suite(tmp_path, "-p", "no:xdist", f"--conformance-xfail={xfails}",
                 f"--conformance-report={tmp_path / 'out'}", "--conformance-replays=1")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert re.search(r"1 xfailed, 1 xpassed", output), output[-2000:]
    assert f"XPASS {PROPERTY}[select] ({xfails}:3): passed; remove it from the xfail file" \
        in output
    table = [line for line in output.splitlines() if line.startswith((MUTANT, "select "))]
    assert any(line.split()[7] == "xf" for line in table if line.startswith(MUTANT)), table
    assert any(line.split()[7] == "XP" for line in table if line.startswith("select")), table

    report = valid(json.loads((tmp_path / "out" / "report.json").read_text()))
    assert report["verdicts"][MUTANT]["S7"] == "expected failure"
    assert report["verdicts"]["select"]["S7"] == "unexpectedly passed"
    assert [e["status"] for e in report["xfail_entries"]] == [
        "expected failure", "passed: remove it from the file"]
    (failure,) = report["failures"]
    assert failure["outcome"] == "xfailed" and failure["xfail"].startswith("0 means unlimited")
    assert failure["replay"]["class"] == "reproducible"
    page = (tmp_path / "out" / "report.html").read_text()
    assert "expected failure" in page and "0 means unlimited: issue 1" in page
    assert 'class="cell expected-failure"' in page


# ---- the xfail file


def test_xfail_file_entries(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("\n# comment\nS4 # all\nselect::s6  # one\npkg.mod:make::S7 # colon\n"
                    "test_a[select]  # one test\ntest_b # every impl\n")
    xf = XfailList.load(str(path))
    assert [(e.clause, e.impl, e.test, e.line) for e in xf.entries] == [
        ("S4", None, None, 3), ("S6", "select", None, 4), ("S7", "pkg.mod:make", None, 5),
        (None, None, "test_a[select]", 6), (None, None, "test_b", 7)]
    assert xf.for_test("conformance/suite/t.py::test_a[select]") is xf.entries[3]
    assert xf.for_test("conformance/suite/t.py::test_a[epoll]") is None
    assert xf.for_test("conformance/suite/t.py::test_b[epoll]") is xf.entries[4]
    assert xf.for_test("conformance/suite/t.py::xtest_b[epoll]") is None
    node = "t.py::test_c[select]"
    assert xf.expects_failure(node, "select", ["S4", "S6"]) is xf.entries[0]
    assert xf.expects_failure(node, "epoll", ["S4", "S6"]) is None  # S6: select's only
    assert xf.expects_failure(node, "pkg.mod:make", ["S7"]) is xf.entries[2]
    assert xf.expects_failure(node, "select", []) is None


@pytest.mark.parametrize(("line", "says"), [
    ("S4", "say why after '#'"),
    ("S14 # no such", "no clause S14"),
    ("select::S0 # no such", "no clause S0"),
    ("test_a test_b # two", "one test id or clause per line"),
])
def test_xfail_file_errors_name_the_line(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "x.txt"
    path.write_text(f"# first\n{line}\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(says)):
        XfailList.load(str(path))


# ---- replays, in this process

#: S4 broken once in the process: the first send() is lost. A failure that does not come back.
LOSSY_ONCE = """
from impls.select_ import SelectServer

LOST = []


class LossyOnce(SelectServer):
    def send(self, session_id, data):
        if not LOST:
            LOST.append(data)
            return True
        return super().send(session_id, data)


make_server = LossyOnce
"""

#: send() refuses everything: a failure at once, so shrinking takes milliseconds.
REFUSES = """
from impls.select_ import SelectServer


class Refuses(SelectServer):
    def send(self, session_id, data):
        return False


make_server = Refuses
"""

#: An S7 property: a send() that fits the empty queue is accepted. Never true of REFUSES.
S7_PROPERTY = """
import pytest
from hypothesis import given, settings, strategies as st


@pytest.mark.clause("S7")
@settings(max_examples=5, deadline=None, database=None)
@given(size=st.integers(1, 1000), tags=st.lists(st.booleans(), max_size=2))
def test_a_send_that_fits_is_accepted(conformance, size, tags):
    tags.append(size)  # a test may change what it drew; the replay gets the original
    with conformance.scenario(send_queue_limit=1000) as sc:
        sid = sc.session(sc.connect())
        if not sc.rec.send(sid, b"x" * size):
            raise sc.fail("S7", f"send() of {size} bytes to an empty queue -> True",
                          "it returned False", [sid])
"""


def test_a_failure_that_passes_on_replay_is_schedule_sensitive(
        pytester: pytest.Pytester) -> None:
    from ._support import S4_TEST

    pytester.makepyfile(lossy_once=LOSSY_ONCE, test_s4=S4_TEST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=lossy_once:make_server", "--conformance-report=out")
    result.assert_outcomes(failed=1)
    assert summary_row(result, "lossy_once:make_server")["S4"] == "FAIL"
    report = valid(json.loads((pytester.path / "out" / "report.json").read_text()))
    (failure,) = report["failures"]
    assert failure["replay"]["class"] == "schedule-sensitive"
    assert [r["outcome"] for r in failure["replay"]["runs"]] == ["passed"]
    assert failure["example"]["arguments"] is None  # not a property: run again whole


def test_a_property_replays_its_failing_example(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(refuses=REFUSES, test_s7=S7_PROPERTY)
    pytester.syspathinsert()
    result = run(pytester, "--impl=refuses:make_server", "--conformance-report=out",
                 "--conformance-replays=2")
    result.assert_outcomes(failed=1)
    report = valid(json.loads((pytester.path / "out" / "report.json").read_text()))
    (failure,) = report["failures"]
    assert failure["example"]["arguments"] == {"size": "1", "tags": "[]"}  # shrunk, copied
    assert failure["replay"]["class"] == "reproducible"
    assert [(r["outcome"], r["clauses"]) for r in failure["replay"]["runs"]] == [
        ("failed", ["S7"])] * 2
    assert failure["expected"] == "send() of 1 bytes to an empty queue -> True"


class _Item:
    """What `Replayer` needs of a test item without `@given`: `runtest()`."""

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.runs = 0

    def runtest(self) -> None:
        self.runs += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


def test_replays_stop_at_the_first_pass_and_within_their_bounds() -> None:
    from hypothesis.errors import FlakyFailure

    from conformance._replay import Replayer

    failure = AssertionError("S4")
    item = _Item(failure, None, failure)
    got = Replayer(3, 60.0).classify(item, failure, None)  # type: ignore[arg-type]
    assert (got["class"], got["why"], item.runs) == (
        "schedule-sensitive", "replay 2 of 3 passed", 2)

    item = _Item(failure, failure)
    got = Replayer(2, 60.0).classify(item, failure, None)  # type: ignore[arg-type]
    assert (got["class"], item.runs) == ("reproducible", 2)

    flaky = FlakyFailure("Hypothesis' final replay passed", [failure])
    got = Replayer(3, 60.0).classify(_Item(), flaky, None)  # type: ignore[arg-type]
    assert got["class"] == "schedule-sensitive" and got["runs"] == []

    for replayer, why in [
        (Replayer(0, 60.0), "--conformance-replays=0"),
        (Replayer(3, 0.0), "this process spent its replay budget of 0 s"),
        (Replayer(3, 60.0, stop_after=lambda exc: True), "the server wedged"),
        (Replayer(3, 60.0, judge=lambda exc: ("environment error", [])),
         "not a verdict (environment error)"),
    ]:
        item = _Item()
        got = replayer.classify(item, failure, None)  # type: ignore[arg-type]
        assert (got["class"], item.runs) == ("not replayed", 0)
        assert got["why"].startswith(why)


def test_a_bad_xfail_file_or_replay_count_is_a_usage_error(pytester: pytest.Pytester) -> None:
    from ._support import usage_error

    pytester.makefile(".txt", xfails="S4\n")
    text = usage_error(run(pytester, "--impl=select", "--conformance-xfail=xfails.txt"))
    assert "--conformance-xfail: xfails.txt:1: 'S4': say why after '#'" in text, text
    text = usage_error(run(pytester, "--impl=select", "--conformance-xfail=missing.txt"))
    assert "cannot read the xfail file missing.txt" in text, text
    text = usage_error(run(pytester, "--impl=select", "--conformance-replays=-1"))
    assert "--conformance-replays=-1: a count, 0 or more" in text, text
