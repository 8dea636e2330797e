"""Every mutant is killed by the suite, on the clause it breaks.

Each `m_sNN_*.py` beside this file is a reference implementation with one classic bug; its
name says the clause. For each, this runs `pytest conformance --impl=<mutant> --clause=SNN`
in a fresh process (as a user would) and requires the verdict for that clause to be "failed",
and the failure text to read like a verdict (clause, expected, actual).

Hypothesis' example database is pointed at a temporary directory, so a kill is never just a
replay of a failure saved by an earlier run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MUTANTS = sorted(p.stem for p in HERE.glob("m_s*.py"))
# A mutant run normally takes 2-30 s (finding the bug, then shrinking it). This bounds a
# mutant that hangs the suite, so the failure says which one.
BUDGET = 300


def clause_of(mutant: str) -> str:
    match = re.match(r"m_s(\d+)_", mutant)
    assert match, f"mutant file {mutant}.py must be named m_sNN_<bug>.py"
    return f"S{int(match.group(1))}"


def test_every_clause_has_a_mutant():
    """Every clause S1-S13 is broken by at least one mutant (the contract's standard)."""
    from conformance import CLAUSES

    covered = {clause_of(m) for m in MUTANTS}
    assert covered == set(CLAUSES), f"clauses without a mutant: {set(CLAUSES) - covered}"


@pytest.mark.parametrize("mutant", MUTANTS)
def test_mutant_is_killed_on_its_clause(mutant, tmp_path):
    clause = clause_of(mutant)
    if "_c_" in mutant:  # a C mutant (impls/c): built with the system compiler
        from impls.c import compiler

        if compiler() is None:
            pytest.skip(f"{mutant} is C, and there is no C compiler to build it")
    spec = f"tests.mutants.{mutant}:make_server"
    report = tmp_path / "verdicts.json"
    env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis")}
    cmd = [
        sys.executable, "-m", "pytest", str(ROOT / "conformance"), f"--impl={spec}",
        f"--clause={clause}", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
        f"--conformance-report={report}", "--conformance-replays=0",  # a kill, not its class
    ]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=BUDGET)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{mutant}: the suite did not finish within {BUDGET} s: {exc.stdout!r:.2000}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"{mutant} survived (exit {proc.returncode}):\n{output[-4000:]}"
    verdicts = json.loads(report.read_text())["verdicts"][spec]
    assert verdicts[clause] == "failed", (
        f"{mutant} was caught, but not on {clause}: {verdicts}\n{output[-4000:]}"
    )
    assert "expected:" in output and "actual:" in output, output[-4000:]
