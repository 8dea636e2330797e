"""The newcomer's path: what a user meets on a first run from their own project.

`--impl=module:factory` found in the directory pytest runs in (plain `pytest` does not put
it on sys.path), no deprecation warning from the plugin, each failure printed once, the
header saying whether faults are injected, `--clause` leaving the rest "not run", and the
summary naming the failure to read first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import _profiles
from conformance._clauses import CLAUSES

from ._support import MYIMPL, S4_TEST, S5_TEST, run, summary_row

pytest_plugins = ["pytester"]

#: This checkout: the subprocess must run this suite, whatever is installed.
ROOT = Path(__file__).resolve().parents[2]

#: A server whose stop() never calls on_release: every scenario fails as it ends (S2, S11),
#: inside the harness' `with` block exit -- where contextlib's frame used to show.
FORGETS = """
from impls.select_ import SelectServer


class Forgets(SelectServer):
    def start(self, handler, host="127.0.0.1", port=0):
        class Quiet:
            on_connect = handler.on_connect
            on_recv = handler.on_recv

            def on_release(self, sid):
                pass

        return super().start(Quiet(), host, port)


make_server = Forgets
"""

#: A property with a few examples, each failing as its scenario ends.
ENDING_TEST = """
import pytest
from hypothesis import given, strategies as st

from conformance._profiles import suite_settings


@pytest.mark.clause("S11")
@suite_settings()
@given(n=st.integers(1, 3))
def test_stop_releases(conformance, n):
    with conformance.scenario() as sc:
        for _ in range(n):
            sc.session(sc.connect())
"""

#: Does not inject faults: no inject_faults method.
NO_FAULTS = """
from impls.select_ import SelectServer


class Plain(SelectServer):
    inject_faults = None


make_server = Plain
"""


def _plain_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The `pytest` script beside this interpreter, as a user types it: unlike
    `python -m pytest` it does not put the directory it runs in on sys.path (nor does this
    run: pytester's own subprocesses would, through PYTHONPATH)."""
    script = Path(sys.executable).with_name("pytest")
    assert script.exists(), f"no pytest script beside {sys.executable}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    began = time.monotonic()
    done = subprocess.run([str(script), "-p", "no:cacheprovider", *args], cwd=pytester.path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    return pytest.RunResult(done.returncode, done.stdout.splitlines(),
                            done.stderr.splitlines(), time.monotonic() - began)


def test_plain_pytest_finds_module_factory_in_the_invocation_dir(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(newcomer_mod=MYIMPL, test_s5=S5_TEST)
    result = _plain_pytest(pytester, "-p", "no:xdist", "--impl=newcomer_mod:make_server")
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.OK, output
    assert "cannot import" not in output, output
    assert summary_row(result, "newcomer_mod:make_server")["S5"] == "ok"
    assert "Deprecat" not in output and "RemovedIn" not in output, output


def test_impl_dir_chooses_where_module_factory_is_imported_from(
        pytester: pytest.Pytester) -> None:
    pytester.mkdir("src")
    (pytester.path / "src" / "newcomer_src_mod.py").write_text(MYIMPL)
    pytester.makepyfile(test_s5=S5_TEST)
    result = run(pytester, "--impl=newcomer_src_mod:make_server", "--impl-dir=src")
    result.assert_outcomes(passed=1)

    missing = run(pytester, "--impl=newcomer_src_mod:make_server")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    text = " ".join("\n".join(missing.errlines).split())
    assert f"({pytester.path}; --impl-dir=DIR to choose another)" in text, text


def test_pyargs_collects_the_installed_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(newcomer_mod=MYIMPL)
    collected = _plain_pytest(pytester, "--pyargs", "conformance",
                              "--impl=newcomer_mod:make_server", "--clause=S5",
                              "--collect-only", "-q")
    output = "\n".join(collected.outlines + collected.errlines)
    assert collected.ret == pytest.ExitCode.OK, output
    assert "test_s05_" in output, output


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_path_form_outside_a_checkout_says_to_use_pyargs(pytester: pytest.Pytester,
                                                             xdist: list[str]) -> None:
    """Under xdist, pytest's own "not found" would be lost in the workers: no tests, exit 5."""
    result = run(pytester, *xdist, "conformance", "--impl=select")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines + result.errlines
    assert [line for line in result.errlines if line] == [
        "ERROR: file or directory not found: conformance",
        "ERROR: io-conformance is installed here as the package 'conformance', not a directory: "
        "run `pytest --pyargs conformance --impl=...` (the path form `pytest conformance` works "
        "in a checkout of io-conformance).",
    ], result.errlines


def test_impl_fixture_raises_no_deprecation_warning(pytester: pytest.Pytester) -> None:
    """pytest 9 deprecates module-scoped fixtures that are instance methods; the `impl`
    fixture the plugin adds is not one. (The ini written for every run here makes any
    pytest or Hypothesis deprecation an error.)"""
    pytester.makepyfile(test_s5=S5_TEST)
    result = run(pytester, "--impl=select,blocking", "-W", "error::DeprecationWarning")
    result.assert_outcomes(passed=2)
    assert "warnings" not in result.parseoutcomes()


def _failure_section(result: pytest.RunResult) -> str:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "= FAILURES =" in line)
    end = next(i for i, line in enumerate(lines) if "conformance: implementation x clause" in line)
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("budget", [None, 0.0], ids=["shrunk", "shrinking-stopped"])
def test_each_failure_is_printed_once(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                      budget: float | None) -> None:
    """Once, pointing at the test's line: not again inside a ShrinkingStopped, and with no
    contextlib source between the test and the verdict."""
    if budget is not None:  # the first failing example already spends the budget
        monkeypatch.setitem(_profiles.SHRINK_BUDGETS, _profiles.DEFAULT, budget)
    pytester.makepyfile(forgets=FORGETS, test_ending=ENDING_TEST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=forgets:make_server", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    section = _failure_section(result)
    verdict = "no on_release for 1 when stop() returned"
    assert section.count(verdict) == 1, section
    assert "contextlib" not in section, section
    assert "direct cause" not in section and "During handling" not in section, section
    assert "with conformance.scenario() as sc:" in section, section  # the test's line
    stopped = "ShrinkingStopped: Shrinking stopped here"
    assert section.count(stopped) == (0 if budget is None else 1), section


def test_header_says_whether_faults_are_injected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(plain=NO_FAULTS, test_s5=S5_TEST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=select,plain:make_server")
    result.assert_outcomes(passed=2)
    [line] = [line for line in result.outlines
              if line.startswith("conformance: fault injection:")]
    assert line.startswith(
        "conformance: fault injection: select on, plain:make_server off (no inject_faults(): "
    ), line
    assert line.endswith("which faults each test met: --hypothesis-show-statistics"), line


MULTI_CLAUSE_TEST = """
import pytest


@pytest.mark.clause("S5", "S2")
def test_fin_and_order(conformance):
    with conformance.scenario() as sc:
        sc.session(sc.connect())
"""


def test_clause_option_leaves_the_others_not_run(pytester: pytest.Pytester) -> None:
    """The S5 test also touches S2, but it is not all of S2's checks: S2 reads "not run"."""
    pytester.makepyfile(test_multi=MULTI_CLAUSE_TEST)
    result = run(pytester, "--impl=select", "--clause=S5")
    result.assert_outcomes(passed=1)
    assert summary_row(result, "select") == {c: "ok" if c == "S5" else "-" for c in CLAUSES}

    everything = run(pytester, "--impl=select")
    row = summary_row(everything, "select")
    assert (row["S5"], row["S2"]) == ("ok", "ok"), row


def test_summary_says_which_failure_to_read_first(pytester: pytest.Pytester) -> None:
    """Two clauses red: the summary points at the one earlier in the chain of causes; one
    clause red: no pointer, the failure is the place to start anyway."""
    pytester.makepyfile(
        forgets=FORGETS,
        both=FORGETS + "\n\nclass Lossy(Forgets):\n    def send(self, session_id, data):\n"
        "        return True\n\n\nmake_server = Lossy\n",
        test_s4=S4_TEST, test_ending=ENDING_TEST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=forgets:make_server,both:make_server")
    result.assert_outcomes(failed=4)
    assert summary_row(result, "forgets:make_server")["S11"] == "FAIL"
    row = summary_row(result, "both:make_server")
    assert (row["S4"], row["S11"]) == ("FAIL", "FAIL"), row
    starts = [line for line in result.outlines if line.startswith("start here:")]
    assert starts == [
        "start here: both:make_server: test_s4.py::test_accepted_bytes_arrive[both:make_server] "
        "(S4). 2 clauses failed (S4, S11); a broken S4 often makes the later ones fail too, so "
        "fix it first and run again."
    ], result.outlines


FLAKY_TEST = """
import pytest
from hypothesis import given, strategies as st

from conformance._profiles import suite_settings

calls = []


@pytest.mark.clause("S11")
@suite_settings()
@given(n=st.integers(0, 3))
def test_fails_once(conformance, n):
    calls.append(n)
    if len(calls) == 1:  # only the first call runs a scenario, which fails as it ends
        with conformance.scenario() as sc:
            sc.session(sc.connect())
"""


def test_a_failure_that_did_not_repeat_is_printed_once(pytester: pytest.Pytester) -> None:
    """Hypothesis' FlakyFailure holds the failure as its sub-exception, which pytest prints
    as Python does (no frame hidden), and again as a note of text; the note goes, and so do
    contextlib's and the harness' frames."""
    pytester.makepyfile(forgets=FORGETS, test_flaky=FLAKY_TEST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=forgets:make_server")
    result.assert_outcomes(failed=1)
    section = _failure_section(result)
    assert "FlakyFailure" in section, section
    assert section.count("no on_release for 1 when stop() returned") == 1, section
    assert "Failed to reproduce exception" not in section, section
    assert "contextlib" not in section and "_harness.py" not in section, section
    assert "with conformance.scenario() as sc:" in section, section
