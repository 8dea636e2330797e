"""The pytest plugin: `pytest conformance --impl=NAME`.

Registered under the `pytest11` entry point, so it is active wherever io-conformance is
installed; it stays inert (no imports of implementations, no Hypothesis settings changed)
until a test asks for its fixtures. What it adds:

- options (names are constants here, for tests and docs to import);
- the `impl` fixture: module-scoped and parametrized by `--impl`, each test id carrying the
  name -- override it in your conftest.py to choose without the option (like anyio's
  `anyio_backend`);
- the `conformance` fixture: a `Harness` for the chosen implementation;
- `@pytest.mark.clause("S4")` on every test, `--clause=S4` to run only those;
- a report header, and an implementation x clause summary at the end (`--conformance-report`
  writes it as JSON).

Loading lives in `_loading.py`, the verdict table in `_report.py`.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from ._calls import stuck_calls
from ._clauses import CLAUSES
from ._environment import SuiteEnvironmentError
from ._loading import Impl, ImplError, check_interface, parse_impl_option, resolve, smoke_start
from ._report import PROPERTY, Verdicts

IMPL_OPTION = "--impl"
TIMEOUT_SCALE_OPTION = "--conformance-timeout-scale"
CLAUSE_OPTION = "--clause"
REPORT_OPTION = "--conformance-report"

_specs_key: pytest.StashKey[list[str]] = pytest.StashKey()
# impl name -> where its first server wedged, and the clause (see _harness.ImplWedged)
_wedged_key: pytest.StashKey[dict[str, tuple[str, str]]] = pytest.StashKey()
_exitstatus_key: pytest.StashKey[int] = pytest.StashKey()
# Calls already stuck when this run began (an earlier in-process run's): not this run's.
_stuck_before_key: pytest.StashKey[set[threading.Thread]] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "io-conformance (check an I/O-model implementation)")
    group.addoption(
        IMPL_OPTION, dest="conformance_impl", default=None, metavar="NAME[,NAME...]",
        help="implementation(s) to check: a built-in (blocking, select, epoll, iocp, trio), "
        "an entry point in the group conformance.impls, 'package.module:factory', or 'all' "
        "(default: all built-ins)",
    )
    group.addoption(
        TIMEOUT_SCALE_OPTION, dest="conformance_timeout_scale", type=float, default=1.0,
        metavar="FACTOR", help="multiply every deadline of the suite (e.g. 3 on a slow CI "
        "machine or under a debugger); default 1",
    )
    group.addoption(
        CLAUSE_OPTION, dest="conformance_clauses", action="append", default=[],
        metavar="S<n>", help="run only the tests of these clauses (repeat or comma-separate)",
    )
    group.addoption(
        REPORT_OPTION, dest="conformance_report", default=None, metavar="PATH",
        help="write the implementation x clause verdicts as JSON to PATH",
    )


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' plugin loads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clause(*ids): the contract clauses (S1..S13) this test checks"
    )
    config.stash[_stuck_before_key] = set(stuck_calls())
    scale = config.getoption("conformance_timeout_scale")
    if scale is None or not math.isfinite(scale) or scale <= 0:
        raise pytest.UsageError(
            f"{TIMEOUT_SCALE_OPTION}={scale}: it must be a finite number above 0, e.g. 3 to "
            "give every deadline three times as long on a slow machine"
        )
    from ._exec import set_timeout_scale  # the exec: adapter's waits follow the harness's

    set_timeout_scale(scale)
    clauses = _requested_clauses(config)
    unknown = [c for c in clauses if c not in CLAUSES]
    if unknown:
        raise pytest.UsageError(
            f"{CLAUSE_OPTION}: no clause {', '.join(unknown)}; the clauses are "
            f"{', '.join(CLAUSES)} (see docs/contract.md)"
        )
    profile = config.getoption("hypothesis_profile", None)
    if profile is not None:
        from . import _profiles  # registers the suite's profiles before Hypothesis loads one

        if not _profiles.is_registered(profile):
            raise pytest.UsageError(
                f"--hypothesis-profile={profile}: no such profile. The suite's profiles are "
                f"{', '.join(_profiles.PROFILES)}; Hypothesis has 'default' and 'ci'; or "
                "register your own with settings.register_profile in your conftest.py."
            )
        _profiles.activate(profile)
    try:
        option = config.getoption("conformance_impl")
        specs = parse_impl_option(option)
        if option is not None:
            # Named explicitly: check now, so a typo is one clear paragraph, not 50 errors.
            # (A start() or stop() that hangs or raises is a verdict, not a usage error.)
            for spec in specs:
                impl = resolve(spec)
                check_interface(impl)
                if not hasattr(config, "workerinput"):  # once, in the xdist controller
                    smoke_start(impl, 5.0 * scale)
    except ImplError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_specs_key] = specs
    config.stash[_wedged_key] = {}
    config.pluginmanager.register(_RunPlugin.with_impl_fixture(config, specs), "conformance-run")


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    result = yield
    session.config.stash[_exitstatus_key] = int(session.exitstatus)
    return result


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit now if a wedged server left threads that would keep the interpreter from exiting.

    A call that never returned leaves its thread stuck in the implementation for good, with
    the server's own threads; non-daemon ones would make Python wait for them forever once
    the run is over. Everything is reported by now, so leave without waiting, with the run's
    exit status (skipping atexit handlers: the price of not hanging)."""
    before = config.stash.get(_stuck_before_key, set())
    if not [t for t in stuck_calls() if t not in before]:
        return
    main = threading.main_thread()
    keeping = [t for t in threading.enumerate()
               if t.is_alive() and not t.daemon and t is not main]
    if not keeping:
        return
    status = config.stash.get(_exitstatus_key, int(pytest.ExitCode.TESTS_FAILED))
    sys.stdout.flush()
    sys.stderr.write(
        f"conformance: a wedged server left {len(keeping)} non-daemon thread(s) running "
        f"({', '.join(sorted(t.name for t in keeping)[:5])}); exiting without waiting for "
        f"them, status {status}\n"
    )
    sys.stderr.flush()
    os._exit(status)


def _requested_clauses(config: pytest.Config) -> list[str]:
    raw: list[str] = config.getoption("conformance_clauses") or []
    return [c.strip().upper() for item in raw for c in item.split(",") if c.strip()]


class _RunPlugin:
    """Per-run state, registered at configure time: the `impl` fixture (its params come from
    the command line; a conftest.py fixture named `impl` overrides it) and the verdicts."""

    def __init__(self, config: pytest.Config, specs: list[str]) -> None:
        self.config = config
        self.verdicts = Verdicts()


    @classmethod
    def with_impl_fixture(cls, config: pytest.Config, specs: list[str]) -> _RunPlugin:
        """An instance whose class carries `impl` (pytest reads fixtures off the class)."""

        @pytest.fixture(scope="module", params=[pytest.param(s, id=s) for s in specs])
        def impl(self: _RunPlugin, request: pytest.FixtureRequest) -> Any:
            """The implementation under test: "name", "pkg.mod:factory" or (name, config)."""
            return request.param

        run: _RunPlugin = type("ConformanceRun", (cls,), {"impl": impl})(config, specs)
        return run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == PROPERTY and isinstance(value, dict):
                self.verdicts.add(report.nodeid, value["impl"], value["clauses"],
                                  value["failed"], report.outcome,
                                  value.get("environment", ""))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.verdicts.table:
            return
        terminalreporter.section("conformance: implementation x clause")
        for line in self.verdicts.render():
            terminalreporter.write_line(line)
        path = self.config.getoption("conformance_report")
        if path:
            self.verdicts.write(path)
            terminalreporter.write_line(f"verdicts written to {path}")


@pytest.fixture(scope="module")
def conformance_impl(impl: Any, pytestconfig: pytest.Config) -> Impl:
    """The `impl` spec, loaded."""
    option = pytestconfig.getoption("conformance_impl")
    if option is not None and impl not in pytestconfig.stash[_specs_key]:
        warnings.warn(pytest.PytestWarning(
            f"{IMPL_OPTION}={option} is ignored here: a conftest.py overrides the `impl` "
            f"fixture, which chose {impl!r}. Remove one of the two."
        ), stacklevel=1)
    try:
        loaded = resolve(impl)
        check_interface(loaded)
    except ImplError as exc:
        pytest.fail(str(exc), pytrace=False)
    return loaded


@pytest.fixture(scope="module")
def conformance(conformance_impl: Impl, pytestconfig: pytest.Config) -> Iterator[Any]:
    """A `Harness`: `with conformance.scenario(...) as sc:` runs one scenario."""
    from ._harness import Harness, Timeouts
    from ._profiles import shrink_budget

    yield Harness(conformance_impl, Timeouts(pytestconfig.getoption("conformance_timeout_scale")),
                  shrink_budget(), pytestconfig.stash[_wedged_key])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    harness = getattr(item, "funcargs", {}).get("conformance")
    if harness is not None:
        harness.begin_test(item.nodeid)  # each test has its own shrink budget
    return (yield)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set(_requested_clauses(config))
    if not wanted:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        clauses = {c for m in item.iter_markers("clause") for c in m.args}
        (keep if clauses & wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("conformance_impl") is None:
        return None
    specs: list[str] = config.stash[_specs_key]
    return (
        f"conformance: impl={', '.join(specs)}; "
        f"timeout scale {config.getoption('conformance_timeout_scale'):g}; "
        f"hypothesis profile {config.getoption('hypothesis_profile', None) or 'conformance'}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    report: pytest.TestReport = yield  # type: ignore[assignment]
    harness = getattr(item, "funcargs", {}).get("conformance")
    if harness is not None and (report.when == "call" or report.failed):
        clauses = [c for m in item.iter_markers("clause") for c in m.args]
        if report.skipped:
            clauses = []  # a skip or an xfail says nothing about a clause
        failed: list[str] = []
        environment = ""
        if report.failed:
            exc = call.excinfo.value if call.excinfo else None
            env = _environment_error(exc)
            if env is not None and not _broken_clauses(exc, []):
                # judged nothing: its clauses show the environment error, not a verdict
                environment = f"{type(env.cause).__name__} in {env.what}. {env.hint}"
                # The suite's own traceback would only hide the hint.
                report.longrepr = f"{type(env).__name__}: {env}"
            else:
                if _not_run(exc):
                    clauses = []  # failed at once: its own clauses were not checked
                failed = _broken_clauses(exc, clauses)
        report.user_properties.append(
            (PROPERTY, {"impl": harness.impl.name, "clauses": clauses, "failed": failed,
                        "environment": environment})
        )
    return report  # type: ignore[return-value]


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """A test that met an environment error is an ERROR (it failed to run), not a FAILED
    (the implementation failed it); the run still fails."""
    if report.failed and any(key == PROPERTY and isinstance(value, dict)
                             and value.get("environment")
                             for key, value in report.user_properties):
        return "error", "E", "ERROR"
    return None


def _environment_error(exc: BaseException | None) -> SuiteEnvironmentError | None:
    """The `SuiteEnvironmentError` behind a test's failure, if that is what it was."""
    from ._harness import ServerWedged, ShrinkingStopped

    if isinstance(exc, SuiteEnvironmentError):
        return exc
    if isinstance(exc, ServerWedged | ShrinkingStopped):
        return _environment_error(exc.failure)
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _environment_error(sub)
            if found is not None:
                return found
    return None


def _not_run(exc: BaseException | None) -> bool:
    """True if the test's own checks never ran: its server did not start, or an earlier
    server of the implementation is wedged. Its clauses then get no verdict from it."""
    from ._harness import ImplWedged, ServerWedged, ShrinkingStopped, StartFailed

    if isinstance(exc, ServerWedged | ShrinkingStopped):
        return _not_run(exc.failure)
    return isinstance(exc, ImplWedged | StartFailed)


def _broken_clauses(exc: BaseException | None, own: list[str]) -> list[str]:
    """The clauses a failure names: a ConformanceFailure's, or those inside a group; `own`
    (the test's clauses) for one that names none, such as an exception from the server."""
    from ._checker import ConformanceFailure
    from ._harness import ImplWedged, ServerWedged, ShrinkingStopped

    if isinstance(exc, ConformanceFailure):
        return exc.clauses
    if isinstance(exc, ServerWedged):  # and the hung call's clause
        return list(dict.fromkeys([*_broken_clauses(exc.failure, own), exc.clause]))
    if isinstance(exc, ShrinkingStopped):
        return _broken_clauses(exc.failure, own)
    if isinstance(exc, ImplWedged):
        return [exc.clause]
    if isinstance(exc, BaseExceptionGroup):
        named = (c for sub in exc.exceptions for c in _broken_clauses(sub, []))
        return list(dict.fromkeys(named)) or own
    return own
