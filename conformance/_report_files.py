"""`--conformance-report=DIR`: report.json and a self-contained report.html; and the
`--conformance-xfail` and `--conformance-replays` options that shape them.

Where the data comes from, so that a `-n 2` run writes the same report as a serial one: each
test's report already carries the plugin's verdict record in `user_properties` (impl, clauses,
broken clauses; see `_report.py`), which pytest-xdist sends from the worker to the controller
with the report. The worker that ran a failing test adds one more entry, `DETAIL`: the parts of
the failure (clause, expected, actual, timeline), the example, the replays and the command
that reproduces it. The controller collects both in `pytest_runtest_logreport`, in whatever
order the workers finish, and writes the files at the end, sorted by implementation and test
id. The verdict of each cell is the terminal table's (`Verdicts.verdict`).

The fields of report.json are documented in docs/report.md; `report.schema.json` beside this
module is its JSON Schema. Bump `SCHEMA_VERSION` on any change a reader could notice.
"""

from __future__ import annotations

import json
import platform
import random
import reprlib
import shlex
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._clauses import CLAUSES
from ._report import PROPERTY, Verdicts
from ._xfail import Entry, XfailList

if TYPE_CHECKING:  # imported when a run asks for a report: the plugin stays light until then
    from ._replay import Recorder, Replayer

__all__ = ["DETAIL", "SCHEMA_VERSION", "addoption", "configure"]

SCHEMA_VERSION = 1
DETAIL = "conformance-failure"  # the user_properties key of a failure's parts
REPORT_OPTION = "--conformance-report"
XFAIL_OPTION = "--conformance-xfail"
REPLAYS_OPTION = "--conformance-replays"
# Enough to tell "every time" from "sometimes" for most schedule-sensitive bugs we have seen
# (they fail about half the time), few enough to keep a red run's cost in seconds.
REPLAYS = 3
# Texts kept in the report, in characters: a falsifying example may hold a 2 MB payload.
_LONG = 20_000
_NOTE = 4_000
_VALUE = 300

_outer_seed_key: pytest.StashKey[object] = pytest.StashKey()
_recorder_key: pytest.StashKey[Recorder | None] = pytest.StashKey()
_replay_key: pytest.StashKey[dict[str, Any]] = pytest.StashKey()


def addoption(group: Any) -> None:
    group.addoption(
        REPORT_OPTION, dest="conformance_report", default=None, metavar="DIR",
        help="write DIR/report.json and a self-contained DIR/report.html: the implementation "
        "x clause verdicts, and each failure with its timeline, example, replays and the "
        "command that reproduces it (a PATH ending in .json: only that JSON file)",
    )
    group.addoption(
        XFAIL_OPTION, dest="conformance_xfail", default=None, metavar="FILE",
        help="expected failures, one test id or clause (S4, impl::S4) per line with a "
        "reason after '#'; they keep the run green, and one that passes is reported",
    )
    group.addoption(
        REPLAYS_OPTION, dest="conformance_replays", type=int, default=REPLAYS, metavar="N",
        help=f"with {REPORT_OPTION}: run each failing example N more times to class it "
        f"reproducible or schedule-sensitive (default {REPLAYS}; 0: no replays)",
    )


def configure(config: pytest.Config, scale: float) -> None:
    """Called from the plugin's pytest_configure, before Hypothesis' own reads its seed."""
    target = config.getoption("conformance_report")
    xfail_path = config.getoption("conformance_xfail")
    replays = config.getoption("conformance_replays")
    if replays is None or replays < 0:
        raise pytest.UsageError(f"{REPLAYS_OPTION}={replays}: a count, 0 or more")
    xfails = None
    if xfail_path:
        try:
            xfails = XfailList.load(xfail_path)
        except ValueError as exc:
            raise pytest.UsageError(f"{XFAIL_OPTION}: {exc}") from None
    if target and config.getoption("hypothesis_seed", None) is None:
        # One seed for the whole run, so that each failure's command reproduces it; the
        # workers take the controller's (pytest_configure_node).
        worker = getattr(config, "workerinput", None)
        seed = (worker or {}).get("conformance_seed") or random.SystemRandom().getrandbits(32)
        from hypothesis import core

        config.stash[_outer_seed_key] = core.global_force_seed  # to restore at unconfigure
        config.option.hypothesis_seed = str(seed)
    config.pluginmanager.register(ReportRun(config, target, xfails, replays, scale),
                                  "conformance-report")


def _property(report: pytest.TestReport, key: str) -> dict[str, Any] | None:
    for k, value in report.user_properties:
        if k == key and isinstance(value, dict):
            return value
    return None


class ReportRun:
    """The report's hooks; registered by `configure` in every process of the run."""

    def __init__(self, config: pytest.Config, target: str | None, xfails: XfailList | None,
                 replays: int, scale: float) -> None:
        self.config = config
        self.target = target
        self.xfails = xfails
        self.replays = replays if target else 0
        self.scale = scale
        self._replayer: Replayer | None = None
        self.started = time.time()
        self.tests: dict[str, dict[str, Any]] = {}
        self.details: dict[str, dict[str, Any]] = {}
        self.written: list[Path] = []
        self.entries: list[dict[str, Any]] = []

    @property
    def replayer(self) -> Replayer:
        if self._replayer is None:
            from ._replay import BUDGET, Replayer

            self._replayer = Replayer(self.replays, BUDGET * self.scale, judge=_judge,
                                      stop_after=_wedged)
        return self._replayer

    # ---- in the process that runs the test (a worker, or the only one)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["conformance_seed"] = self.config.getoption("hypothesis_seed", None)

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        parts = []
        if self.target:
            parts.append(f"report to {self.target}, hypothesis seed "
                         f"{config.getoption('hypothesis_seed', None)}, "
                         f"{self.replays} replays per failure")
        if self.xfails:
            parts.append(f"{len(self.xfails.entries)} expected failures from "
                         f"{self.xfails.path}")
        return f"conformance: {'; '.join(parts)}" if parts else None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        recorder = hyp = None
        obj = getattr(item, "obj", None)
        if self.target and obj is not None and _is_property(obj):
            from ._replay import Recorder

            # Hypothesis calls `.hypothesis.inner_test` for each example, and documents it
            # as the place to wrap them (pytest-trio does): here, to keep the failing one.
            hyp = obj.hypothesis
            recorder = Recorder(hyp.inner_test, set(getattr(item, "funcargs", {})))
            hyp.inner_test = recorder.wrapper()
        item.stash[_recorder_key] = recorder
        try:
            return (yield)
        except BaseException as failure:
            if self.target and _in_suite(item) and not isinstance(
                    failure, pytest.skip.Exception | pytest.xfail.Exception):
                item.stash[_replay_key] = self.replayer.classify(item, failure, recorder)
            raise
        finally:
            if hyp is not None and recorder is not None:
                hyp.inner_test = recorder.inner

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after the plugin's verdict
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Iterator[None]:
        report: pytest.TestReport = yield  # type: ignore[assignment]
        verdict = _property(report, PROPERTY)
        if verdict is None:
            return report  # type: ignore[return-value]
        if report.failed and self.target:
            report.user_properties.append((DETAIL, self._detail(item, call, report)))
        if self.xfails is not None and not hasattr(report, "wasxfail"):
            entry: Entry | None = None
            if report.failed and not verdict.get("environment"):
                entry = self.xfails.expects_failure(report.nodeid, verdict["impl"],
                                                    verdict["failed"])
                if entry is not None:  # as pytest's own xfail marker does it
                    report.outcome = "skipped"
            elif report.passed and report.when == "call":
                entry = self.xfails.for_test(report.nodeid)
            if entry is not None:
                report.wasxfail = f"{entry.reason} ({self.xfails.path}:{entry.line})"
        return report  # type: ignore[return-value]

    def _detail(self, item: pytest.Item, call: pytest.CallInfo[None],
                report: pytest.TestReport) -> dict[str, Any]:
        from ._checker import ConformanceFailure

        exc = call.excinfo.value if call.excinfo else None
        chain = list(_chain(exc))
        found = next((e for e in chain if isinstance(e, ConformanceFailure)), None)
        notes = [str(n)[:_NOTE] for e in chain for n in getattr(e, "__notes__", ())]
        recorder = item.stash.get(_recorder_key, None)
        failing = recorder.failing if recorder is not None else None
        return {
            "kind": " > ".join(dict.fromkeys(type(e).__name__ for e in chain)) or None,
            "clause": found.clause if found else None,
            "expected": getattr(found, "expected", None),
            "actual": getattr(found, "actual", None),
            "also": list(getattr(found, "also", [])),
            "timeline": getattr(found, "timeline", None) or None,
            "example": {
                "arguments": None if failing is None else {
                    k: _short(v) for k, v in failing.items()},
                "hypothesis": "\n".join(notes) or None,
            },
            "replay": item.stash.get(_replay_key, None),
            "reproduce": self._command(item),
            "message": report.longreprtext[:_LONG],
        }

    def _command(self, item: pytest.Item) -> str:
        config = self.config
        here = config.invocation_params.dir
        path = Path(item.path)
        tail = item.nodeid[item.nodeid.find("::"):] if "::" in item.nodeid else ""
        module = getattr(getattr(item, "module", None), "__name__", "")
        try:
            cmd = ["python", "-m", "pytest", str(path.relative_to(here)) + tail]
        except ValueError:
            # The installed suite (`--pyargs conformance`): its path is inside this machine's
            # site-packages, which the reader of a CI artifact does not have; its module name
            # holds wherever io-conformance is installed.
            cmd = (["python", "-m", "pytest", "--pyargs", module + tail]
                   if module.startswith("conformance.")
                   else ["python", "-m", "pytest", str(path) + tail])
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "impl" in callspec.params \
                and config.getoption("conformance_impl") is not None:
            cmd.append(f"--impl={callspec.params['impl']}")
        impl_dir = config.getoption("conformance_impl_dir", None)
        if impl_dir not in (None, "."):
            cmd.append(f"--impl-dir={impl_dir}")
        seed = config.getoption("hypothesis_seed", None)
        if seed is not None:
            cmd.append(f"--hypothesis-seed={seed}")
        profile = config.getoption("hypothesis_profile", None)
        if profile:
            cmd.append(f"--hypothesis-profile={profile}")
        scale = config.getoption("conformance_timeout_scale")
        if scale != 1:
            cmd.append(f"--conformance-timeout-scale={scale:g}")
        return shlex.join(cmd)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if _outer_seed_key in config.stash:
            # Hypothesis' plugin made our seed its process-wide one; a pytest run inside
            # this process (pytester) must not leave it to the tests that follow.
            from hypothesis import core

            core.global_force_seed = config.stash[_outer_seed_key]  # type: ignore[assignment]

    # ---- in the controller (or the only process): collect, then write

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        verdict = _property(report, PROPERTY)
        if verdict is None:
            return
        outcome = _outcome(report, verdict)
        test = self.tests.setdefault(report.nodeid, {
            "nodeid": report.nodeid, "impl": verdict["impl"], "clauses": [], "broken": [],
            "outcome": outcome, "xfail": None, "environment": None,
        })
        test["clauses"] = list(dict.fromkeys([*test["clauses"], *verdict["clauses"],
                                              *verdict["failed"]]))
        test["broken"] = list(dict.fromkeys([*test["broken"], *verdict["failed"]]))
        if _SEVERITY.index(outcome) < _SEVERITY.index(test["outcome"]):
            test["outcome"] = outcome
        if getattr(report, "wasxfail", None):
            test["xfail"] = report.wasxfail
        if verdict.get("environment"):
            test["environment"] = verdict["environment"]
        detail = _property(report, DETAIL)
        if detail is not None and report.nodeid not in self.details:
            self.details[report.nodeid] = detail

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return  # the controller writes the report
        run = self.config.pluginmanager.get_plugin("conformance-run")
        verdicts: Verdicts | None = getattr(run, "verdicts", None)
        if verdicts is None:
            return
        self._mark_listed(verdicts)
        if not self.target:
            return
        report = self._report(verdicts, int(session.exitstatus))
        target = Path(self.target)
        if target.suffix == ".json":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(report, indent=2) + "\n")
            self.written = [target]
            return
        target.mkdir(parents=True, exist_ok=True)
        (target / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (target / "report.html").write_text(_html(report))
        self.written = [target / "report.html", target / "report.json"]

    def _mark_listed(self, verdicts: Verdicts) -> None:
        """Cells an xfail file covers: "expected failure" if every failure in them was
        expected, "unexpectedly passed" if they passed yet the file lists them."""
        verdicts.listed.clear()
        cells = self._cells(verdicts)
        for impl, row in cells.items():
            for clause, cell in row.items():
                broke = [t for t in cell if clause in t["broken"]]
                base = verdicts.verdict(impl, clause)
                mark = None
                if base == "failed" and broke and all(t["outcome"] == "xfailed" for t in broke):
                    mark = "expected failure"
                elif base == "passed" and (
                        any(t["outcome"] == "xpassed" for t in cell)
                        or (self.xfails and self.xfails.for_clause(impl, clause))):
                    mark = "unexpectedly passed"
                if mark:
                    verdicts.listed.setdefault(impl, {})[clause] = mark
        self.entries = [self._entry_status(e, verdicts) for e in
                        (self.xfails.entries if self.xfails else ())]

    def _cells(self, verdicts: Verdicts) -> dict[str, dict[str, list[dict[str, Any]]]]:
        cells: dict[str, dict[str, list[dict[str, Any]]]] = {
            impl: {c: [] for c in CLAUSES} for impl in verdicts.table}
        for nodeid in sorted(self.tests):
            test = self.tests[nodeid]
            for c in test["clauses"]:
                cells.setdefault(test["impl"], {c: [] for c in CLAUSES})[c].append(test)
        return cells

    def _entry_status(self, entry: Entry, verdicts: Verdicts) -> dict[str, Any]:
        if entry.clause is not None:
            impls = [i for i in sorted(verdicts.table) if entry.impl in (None, i)]
            seen = [verdicts.verdict(i, entry.clause) for i in impls]
        else:
            seen = [{"xfailed": "expected failure", "xpassed": "unexpectedly passed"}.get(
                t["outcome"], t["outcome"]) for t in self.tests.values()
                if entry.matches_test(t["nodeid"])]
        status = ("expected failure" if "expected failure" in seen
                  else "failed" if "failed" in seen  # with a failure the file does not cover
                  else "passed: remove it from the file" if "unexpectedly passed" in seen
                  else "matched nothing" if not seen else "not run")
        return {**entry.to_json(), "status": status}

    def _report(self, verdicts: Verdicts, exitstatus: int) -> dict[str, Any]:
        config = self.config
        cells = self._cells(verdicts)
        failing = sorted((t for t in self.tests.values() if t["broken"] or t["environment"]
                          or t["outcome"] in ("failed", "error", "xfailed")),
                         key=lambda t: (t["impl"], t["nodeid"]))
        failures = []
        for n, test in enumerate(failing, 1):
            detail = self.details.get(test["nodeid"], {})
            test["failure"] = f"f{n}"
            failures.append({
                "id": f"f{n}", "nodeid": test["nodeid"], "impl": test["impl"],
                "clauses": test["broken"], "outcome": test["outcome"],
                "xfail": test["xfail"], "environment": test["environment"],
                "kind": detail.get("kind"), "clause": detail.get("clause"),
                "expected": detail.get("expected"), "actual": detail.get("actual"),
                "also": detail.get("also", []), "timeline": detail.get("timeline"),
                "example": detail.get("example", {"arguments": None, "hypothesis": None}),
                "replay": detail.get("replay"), "reproduce": detail.get("reproduce"),
                "message": detail.get("message", ""),
            })
        for test in self.tests.values():
            test.setdefault("failure", None)
        return {
            "schema_version": SCHEMA_VERSION,
            "run": {
                "started": datetime.fromtimestamp(self.started, UTC).isoformat(
                    timespec="seconds"),
                "seconds": round(time.time() - self.started, 1),
                "arguments": list(config.invocation_params.args),
                "exit_status": exitstatus,
                "hypothesis_seed": _seed(config),
                "hypothesis_profile": config.getoption("hypothesis_profile", None)
                or "conformance",
                "timeout_scale": config.getoption("conformance_timeout_scale"),
                "replays": self.replays,
                "workers": _workers(config),
                "xfail_file": self.xfails.path if self.xfails else None,
                "versions": _versions(),
            },
            "clauses": [{"id": c.id, "title": c.title, "sentence": c.sentence}
                        for c in CLAUSES.values()],
            "implementations": sorted(verdicts.table),
            "verdicts": {impl: {c: verdicts.verdict(impl, c) for c in CLAUSES}
                         for impl in sorted(verdicts.table)},
            "cells": {impl: {c: [t["nodeid"] for t in cells.get(impl, {}).get(c, [])]
                             for c in CLAUSES} for impl in sorted(verdicts.table)},
            "tests": [self.tests[k] for k in sorted(self.tests)],
            "failures": failures,
            "xfail_entries": self.entries,
        }

    @pytest.hookimpl(trylast=True)  # after the table
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for failure in self._replayed_lines():
            terminalreporter.write_line(failure)
        passed = [e for e in self.entries if e["status"].startswith("passed")]
        for e in passed:
            terminalreporter.write_line(
                f"XPASS {e['entry']} ({self.xfails.path if self.xfails else ''}:{e['line']}): "
                f"passed; remove it from the xfail file")
        unused = [e for e in self.entries if e["status"] == "matched nothing"]
        for e in unused:
            terminalreporter.write_line(
                f"xfail entry {e['entry']} (line {e['line']}) matched no test of this run")
        if len(self.written) == 1:  # the .json form
            terminalreporter.write_line(f"verdicts written to {self.target}")
        elif self.written:
            terminalreporter.write_line(
                f"conformance report written to {', '.join(map(str, self.written))}")

    def _replayed_lines(self) -> list[str]:
        lines = []
        for nodeid in sorted(self.details):
            replay = self.details[nodeid].get("replay")
            if replay:
                lines.append(f"{replay['class']}: {nodeid} ({replay['why']})")
        return lines


_SEVERITY = ["error", "failed", "xfailed", "xpassed", "passed", "skipped"]


def _outcome(report: pytest.TestReport, verdict: dict[str, Any]) -> str:
    xfail = getattr(report, "wasxfail", None)
    if report.failed:
        return "error" if verdict.get("environment") or report.when != "call" else "failed"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    return "xpassed" if xfail else "passed"


def _is_property(obj: object) -> bool:
    from hypothesis import is_hypothesis_test

    return is_hypothesis_test(obj)


def _in_suite(item: pytest.Item) -> bool:
    return "conformance" in getattr(item, "funcargs", {})


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception and those it carries: a ShrinkingStopped's or ServerWedged's
    `failure`, the members of a group (Hypothesis' Flaky is one)."""
    if exc is None:
        return
    yield exc
    inner = getattr(exc, "failure", None)
    if isinstance(inner, BaseException):
        yield from _chain(inner)
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from _chain(sub)


def _judge(exc: BaseException) -> tuple[str, list[str]]:
    """A replay's outcome, by the rules of the terminal table."""
    from .plugin import _broken_clauses, _environment_error

    if isinstance(exc, pytest.skip.Exception):
        return "skipped", []
    if _environment_error(exc) is not None:
        return "environment error", []
    return "failed", _broken_clauses(exc, [])


def _wedged(exc: BaseException) -> bool:
    from ._run import ImplWedged, ScenarioHang, ServerWedged

    return any(isinstance(e, ImplWedged | ServerWedged | ScenarioHang) for e in _chain(exc))


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _VALUE
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 20


def _short(value: Any) -> str:
    """An argument as Python wrote it, shortened: a payload of 2 MB shows its size."""
    if isinstance(value, bytes | bytearray | str) and len(value) > _VALUE // 3:
        unit = "chars" if isinstance(value, str) else "bytes"
        return f"{value[:_VALUE // 3]!r}... ({len(value)} {unit})"
    return _repr.repr(value)


def _seed(config: pytest.Config) -> int | str | None:
    seed = config.getoption("hypothesis_seed", None)
    try:
        return int(seed)
    except (TypeError, ValueError):
        return seed  # type: ignore[no-any-return]


def _workers(config: pytest.Config) -> int:
    n = config.getoption("numprocesses", None)
    return n if isinstance(n, int) and n > 0 else 1


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("io-conformance", "pytest", "hypothesis"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "unknown"
    return found


def _html(report: dict[str, Any]) -> str:
    import jinja2

    template = resources.files("conformance").joinpath("report.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["anchor"] = lambda s: "".join(c if c.isalnum() else "-" for c in str(s))
    marks = {"passed": "ok", "failed": "FAIL", "environment error": "env", "not run": "-",
             "expected failure": "xfail", "unexpectedly passed": "XPASS"}
    return env.from_string(template).render(r=report, marks=marks,
                                            clauses={c["id"]: c for c in report["clauses"]})
