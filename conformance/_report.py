"""The end-of-run verdict: implementation x clause -> passed / failed.

Each test report carries (in `user_properties`, so it survives pytest-xdist) the impl it ran
against, the clauses its `clause` marker names, and the clauses its failure broke. A failure
that is a `ConformanceFailure` is charged to the clause it names; any other failure (an
exception from the implementation, say) to the clauses of the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ._clauses import CLAUSES

__all__ = ["PROPERTY", "Verdicts"]

PROPERTY = "conformance"  # the user_properties key


@dataclass
class Verdicts:
    # impl -> clause -> [passed, failed] test counts
    table: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    failures: list[dict[str, object]] = field(default_factory=list)

    def add(self, nodeid: str, impl: str, clauses: Iterable[str], failed: Iterable[str],
            outcome: str) -> None:
        row = self.table.setdefault(impl, {})
        failed = list(failed)
        for c in dict.fromkeys([*clauses, *failed]):
            counts = row.setdefault(c, [0, 0])
            counts[1 if c in failed else 0] += 1
        if failed:
            self.failures.append({"nodeid": nodeid, "impl": impl, "clauses": failed,
                                  "outcome": outcome})

    def verdict(self, impl: str, clause: str) -> str:
        passed, failed = self.table.get(impl, {}).get(clause, [0, 0])
        return "failed" if failed else "passed" if passed else "not run"

    def render(self) -> list[str]:
        if not self.table:
            return []
        ids = list(CLAUSES)
        width = max(len(i) for i in self.table) + 2
        mark = {"passed": "ok", "failed": "FAIL", "not run": "-"}
        lines = [" " * width + " ".join(f"{c:>4}" for c in ids)]
        for impl in sorted(self.table):
            cells = " ".join(f"{mark[self.verdict(impl, c)]:>4}" for c in ids)
            lines.append(f"{impl:<{width}}{cells}")
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "verdicts": {impl: {c: self.verdict(impl, c) for c in CLAUSES} for impl in self.table},
            "failures": self.failures,
        }

    def write(self, path: str) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")
