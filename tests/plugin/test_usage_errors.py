"""A bad `--impl`, `--clause` or timeout scale is one usage error that says what to do.

Usage errors are the user's mistakes: a name that does not resolve, a module that does not
import, an object that is not a factory or lacks a method, a start() that returns no address.
A start() or stop() that hangs or raises is the implementation's failure: `test_hangs.py`."""

from __future__ import annotations

import pytest

from ._support import IMPORT_RAISES, INCOMPLETE, run, usage_error

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("args", "modules", "expected"),
    [
        pytest.param(
            ["--impl=nope"], {},
            ["--impl=nope", "no implementation is called 'nope'",
             "Available: blocking, epoll, iocp, select, trio", "'package.module:factory'",
             "ServerConfig"],
            id="unknown-name",
        ),
        pytest.param(
            ["--impl=os:getcwd"], {},
            ["--impl=os:getcwd", "getcwd()", "cannot be called with a ServerConfig",
             "not a server factory", "'package.module:factory'"],
            id="not-a-factory",
        ),
        pytest.param(
            ["--impl=no.such.module:f"], {},
            ["cannot import module 'no.such.module'", "ModuleNotFoundError",
             "Check the spelling"],
            id="no-module",
        ),
        pytest.param(
            ["--impl=half:nosuch"], {"half": INCOMPLETE},
            ["module 'half' has no attribute 'nosuch'", "Callables it does have:",
             "make_server"],
            id="no-attribute",
        ),
        pytest.param(
            ["--impl=half:make_server"], {"half": INCOMPLETE},
            ["--impl=half:make_server", "returned a Half, which lacks disconnect, stop",
             "A server needs start, send, disconnect, stop"],
            id="missing-methods",
        ),
        pytest.param(
            ["--impl=broken:make_server"], {"broken": IMPORT_RAISES},
            ["cannot import module 'broken'", "RuntimeError: this module is broken"],
            id="import-raises",
        ),
        pytest.param(
            ["--clause=S99"], {},
            ["--clause: no clause S99", "the clauses are S1, S2,", "S13",
             "docs/contract.md"],
            id="unknown-clause",
        ),
        pytest.param(
            ["--conformance-timeout-scale=0"], {},
            ["must be a finite number above 0"],
            id="zero-timeout-scale",
        ),
    ],
)
def test_usage_error_says_what_to_do(
    pytester: pytest.Pytester, args: list[str], modules: dict[str, str], expected: list[str]
) -> None:
    pytester.makepyfile(test_never_runs="def test_x(): raise AssertionError")
    if modules:
        pytester.makepyfile(**modules)
        pytester.syspathinsert()
    text = usage_error(run(pytester, *args))
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    assert "test_never_runs" not in text

