"""Correct servers the suite once failed (issue 9), each run through the property it failed.

Each runs one example of the property, in a fresh process: its arguments are the ones that
failed, and a process of its own starts with no thread pool filled by an earlier test.

- A server whose callbacks run on a process-wide pool that starts its workers lazily: the
  S11 leak check counted threads after one warm-up cycle, so the pool's growth over the next
  cycles looked like a leak when the test ran alone.
- A server that reads 512 bytes at a time, under an application that sleeps in every
  on_recv: S2's slow-application property allowed 5 s in total, and a megabyte is two
  thousand slow calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ._support import LAZY_POOL, READS_512

#: This checkout: the subprocess must judge with this suite, whatever is installed.
ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

#: Runs one property, with the arguments given, as a test of its own (no Hypothesis search).
ONE_EXAMPLE = """
import pytest

from conformance.suite.{module} import {prop} as prop


@pytest.mark.clause({clauses})
def test_one_example(conformance):
    prop.hypothesis.inner_test(conformance, {args})
"""


def run_one_example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, impl: str,
                    source: str, module: str, prop: str, clauses: str,
                    args: str) -> pytest.RunResult:
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *([path] if path else [])]))
    pytester.makepyfile(**{impl: source})
    pytester.makepyfile(test_one=ONE_EXAMPLE.format(module=module, prop=prop,
                                                    clauses=clauses, args=args))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", f"--impl={impl}:make_server", timeout=120
    )


def test_lazily_filled_pool_is_no_leak(pytester: pytest.Pytester,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_one_example(pytester, monkeypatch, "lazypool", LAZY_POOL, "test_s11_stop",
                             "test_s11_no_leaks_across_cycles", '"S11"', "sessions=4")
    result.assert_outcomes(passed=1)


def test_512_byte_reader_under_a_slow_application(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_one_example(pytester, monkeypatch, "reads512", READS_512, "test_s02_lifecycle",
                             "test_s02_slow_application_callbacks_never_overlap",
                             '"S2", "S3", "S4"', "size=1 << 20, slow=0.003, seed=0")
    result.assert_outcomes(passed=1)
