"""Every mutant is killed by the suite, on the clause it breaks.

Each `m_sNN_*.py` beside this file is a reference implementation with one classic bug; its
name says the clause. For each, this runs `pytest conformance --impl=<mutant> --clause=SNN`
in a fresh process (as a user would) and requires the verdict for that clause to be "failed",
and the failure text to read like a verdict (clause, expected, actual).

Hypothesis' example database is pointed at a temporary directory, so a kill is never just a
replay of a failure saved by an earlier run.
"""

from __future__ import annotations

import importlib
import inspect
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


# Methods a mutant adds for its own bug, overriding nothing (checked to exist nowhere above).
OWN_HELPERS = {
    "m_s04_iocp_two_sends_in_flight": {"_post_one"},
    "m_s08_epoll_id_to_fd_lookup": {"_find"},
    "m_s08_iocp_completion_key_is_the_slot": {"holder"},
}


def overrides_without_target(mutant: str) -> list[str]:
    """Methods a mutant's classes define that their nearest reference base (a class from
    `impls`) lacks: after a rename there, the override would be dead code -- the mutant would
    run the reference's logic and survive, or die on another clause."""
    module = importlib.import_module(f"tests.mutants.{mutant}")
    missing = []
    for cls in {c for c in vars(module).values()
                if inspect.isclass(c) and c.__module__ == module.__name__}:
        base = next((b for b in cls.__mro__[1:] if b.__module__.startswith("impls")), None)
        assert base is not None, f"{mutant}.{cls.__name__} subclasses no reference class"
        for name, value in vars(cls).items():
            if not callable(value) and not isinstance(value, staticmethod | classmethod):
                continue
            if name.startswith("__") and name != "__init__":
                continue
            own = name in OWN_HELPERS.get(mutant, set())
            if hasattr(base, name) == own:
                where = f"{base.__module__}.{base.__qualname__}"
                missing.append(f"{cls.__name__}.{name}: " + (
                    f"listed as the mutant's own helper, but {where} has it" if own else
                    f"{where} has no method {name!r} any more (renamed? update the mutant)"))
    return sorted(missing)


@pytest.mark.parametrize("mutant", MUTANTS)
def test_mutant_overrides_exist_on_the_reference(mutant):
    """Fails fast, without a kill run, when a method a mutant overrides was renamed or removed
    in its reference model (the extension surface is listed in docs/core.md)."""
    assert not overrides_without_target(mutant)


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
        "--hypothesis-profile=kill",  # the first failing example is the verdict: no shrinking
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
