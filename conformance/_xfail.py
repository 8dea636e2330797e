"""`--conformance-xfail=FILE`: the failures a run expects, so that it stays green.

One entry per line, a reason after `#` (required: the file says why, so that it can shrink):

    S4                                        # every implementation fails S4 (for now)
    select::S6                                # select's one-thread loop, issue 42
    tests.mutants.m_s07_x:make_server::S7     # an implementation name holding ':' is fine
    test_s07_limit_boundary[select]           # one test id (or its tail: path::name[impl])
    test_s07_limit_boundary                   # that test, every implementation

Blank lines and lines starting with `#` are ignored. A test-id entry makes that test an
expected failure whatever it breaks; a clause entry makes a failing test an expected failure
when every clause it broke is listed for its implementation (a test that also breaks an
unlisted clause still fails the run). A listed test that passes, or a listed clause whose
tests all pass, is reported as XPASS: take it out of the file. The model is array-api-tests'
`--xfails-file`, with clauses as well as test ids, and a reason on every line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ._clauses import CLAUSES

__all__ = ["Entry", "XfailList"]

_CLAUSE = re.compile(r"S\d+", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """One line of the file: a clause (for one implementation, or all) or a test id."""

    text: str
    reason: str
    line: int
    clause: str | None = None
    impl: str | None = None  # with `clause`: None means every implementation
    test: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"entry": self.text, "reason": self.reason, "line": self.line,
                "clause": self.clause, "impl": self.impl, "test": self.test}

    def matches_test(self, nodeid: str) -> bool:
        """A test id matches itself and any tail of it after a `/` or `::`; without `[...]`,
        it matches the test for every implementation."""
        if self.test is None:
            return False
        bare = nodeid.split("[", 1)[0]
        return any(n == self.test or n.endswith(("/" + self.test, "::" + self.test))
                   for n in (nodeid, bare))


@dataclass(frozen=True)
class XfailList:
    path: str
    entries: tuple[Entry, ...]

    @classmethod
    def load(cls, path: str) -> XfailList:
        """Read `path`; ValueError names the file, the line and what is wrong with it."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the xfail file {path}: {exc.strerror}") from None
        entries = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            entry, _, reason = (part.strip() for part in line.partition("#"))
            where = f"{path}:{number}: {line!r}"
            if not reason:
                raise ValueError(f"{where}: say why after '#', e.g. '{entry}  # issue 12'")
            if any(c.isspace() for c in entry):
                raise ValueError(f"{where}: one test id or clause per line")
            impl, sep, last = entry.rpartition("::")
            if _CLAUSE.fullmatch(last):
                clause = last.upper()
                if clause not in CLAUSES:
                    raise ValueError(f"{where}: no clause {clause}; the clauses are "
                                     f"{', '.join(CLAUSES)}")
                entries.append(Entry(entry, reason, number, clause=clause,
                                     impl=impl if sep else None))
            else:
                entries.append(Entry(entry, reason, number, test=entry))
        return cls(path, tuple(entries))

    def for_test(self, nodeid: str) -> Entry | None:
        return next((e for e in self.entries if e.matches_test(nodeid)), None)

    def for_clause(self, impl: str, clause: str) -> Entry | None:
        return next((e for e in self.entries
                     if e.clause == clause and e.impl in (None, impl)), None)

    def expects_failure(self, nodeid: str, impl: str, broken: list[str]) -> Entry | None:
        """The entry that makes this failure expected: the test's own, or the clause entry
        of the first broken clause when every broken clause is listed for `impl`."""
        entry = self.for_test(nodeid)
        if entry is not None or not broken:
            return entry
        listed = [self.for_clause(impl, c) for c in broken]
        if all(e is not None for e in listed):
            return listed[0]
        return None
