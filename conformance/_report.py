"""The end-of-run verdict: implementation x clause -> passed / failed.

Each test report carries (in `user_properties`, so it survives pytest-xdist) the impl it ran
against, the clauses its `clause` marker names, and the clauses its failure broke. A failure
that is a `ConformanceFailure` is charged to the clause it names; any other failure (an
exception from the implementation, say) to the clauses of the test. A test that met an
environment error (`SuiteEnvironmentError`: the suite's own sockets or threads failed) judges
no clause: its clauses read "env" -- not checked, and not "ok" either. Under `--clause`, a
clause not asked for reads "not run" even where a selected test also touches it (that test
is not all of the clause's checks); a failure on it still reads FAIL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ._clauses import CLAUSES

__all__ = ["PROPERTY", "Verdicts"]

PROPERTY = "conformance"  # the user_properties key

# Where to start when one bug turns several clauses red: the order in which a broken clause
# makes others fail. Nothing is checked on a connection that was never accepted (S10), nor
# told apart without its id (S1); callbacks out of order (S2) and lost bytes (S3, S4) then
# show up again as sessions that never end (S5, S9) and the rest; every scenario ends in
# stop(), so a stop() that breaks is met last, after all the others (S11).
CAUSAL_ORDER = ["S10", *(c for c in CLAUSES if c not in ("S10", "S11")), "S11"]


@dataclass
class Verdicts:
    # impl -> clause -> [passed, failed, environment error] test counts
    table: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    failures: list[dict[str, object]] = field(default_factory=list)
    # impl -> clause -> "expected failure" / "unexpectedly passed": the cells an xfail file
    # covers (set at the end of the run, see _report_files.py)
    listed: dict[str, dict[str, str]] = field(default_factory=dict)
    # `--clause`: the clauses asked for; empty: all
    requested: set[str] = field(default_factory=set)

    def add(self, nodeid: str, impl: str, clauses: Iterable[str], failed: Iterable[str],
            outcome: str, environment: str = "") -> None:
        """`environment`: the environment error the test met (then it judged no clause)."""
        row = self.table.setdefault(impl, {})
        failed = list(failed)
        for c in dict.fromkeys([*clauses, *failed]):
            if self.requested and c not in self.requested and c not in failed:
                continue  # not asked for: a passing test of another clause is not its verdict
            counts = row.setdefault(c, [0, 0, 0])
            counts[2 if environment else 1 if c in failed else 0] += 1
        if environment:
            self.failures.append({"nodeid": nodeid, "impl": impl, "clauses": [],
                                  "outcome": outcome, "environment": environment})
        elif failed:
            self.failures.append({"nodeid": nodeid, "impl": impl, "clauses": failed,
                                  "outcome": outcome})

    def verdict(self, impl: str, clause: str) -> str:
        listed = self.listed.get(impl, {}).get(clause)
        if listed:
            return listed
        passed, failed, env = self.table.get(impl, {}).get(clause, [0, 0, 0])
        return ("failed" if failed else "environment error" if env
                else "passed" if passed else "not run")

    def environment_messages(self) -> list[str]:
        """The environment errors met, one line each, first seen first."""
        return list(dict.fromkeys(str(f["environment"]) for f in self.failures
                                  if f.get("environment")))

    def render(self) -> list[str]:
        if not self.table:
            return []
        ids = list(CLAUSES)
        width = max(len(i) for i in self.table) + 2
        mark = {"passed": "ok", "failed": "FAIL", "environment error": "env", "not run": "-",
                "expected failure": "xf", "unexpectedly passed": "XP"}
        lines = [" " * width + " ".join(f"{c:>4}" for c in ids)]
        for impl in sorted(self.table):
            cells = " ".join(f"{mark[self.verdict(impl, c)]:>4}" for c in ids)
            lines.append(f"{impl:<{width}}{cells}")
        if self.listed:
            lines.append("xf: failed as the xfail file expects; XP: listed in the xfail file "
                         "but passed -- take it out of the file")
        lines.extend(self.start_here())
        errors = self.environment_messages()
        if errors:
            lines.append("env: not checked -- the suite's own sockets or threads failed, which "
                         "says nothing about the implementation:")
            lines.extend(f"  {e}" for e in errors[:3])
        return lines

    def start_here(self) -> list[str]:
        """For each implementation with several clauses red: the failure to read first, the
        one on the clause earliest in CAUSAL_ORDER (first run of them on a tie)."""
        lines: list[str] = []
        for impl in sorted(self.table):
            failures = [f for f in self.failures if f["impl"] == impl and f["clauses"]]
            red = {c for f in failures for c in _names(f["clauses"])}
            if len(red) < 2:
                continue
            first = min(failures, key=lambda f: min(CAUSAL_ORDER.index(c)
                                                    for c in _names(f["clauses"])))
            clause = min(_names(first["clauses"]), key=CAUSAL_ORDER.index)
            lines.append(
                f"start here: {impl}: {first['nodeid']} ({clause}). {len(red)} clauses failed "
                f"({', '.join(sorted(red, key=CAUSAL_ORDER.index))}); a broken {clause} often "
                "makes the later ones fail too, so fix it first and run again."
            )
        return lines


def _names(clauses: object) -> list[str]:
    return [c for c in clauses if c in CLAUSES] if isinstance(clauses, list) else []
