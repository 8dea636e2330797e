"""A bad `--impl`, `--clause` or timeout scale is one usage error that says what to do."""

from __future__ import annotations

import time

import pytest

from ._support import INCOMPLETE, START_HANGS, START_RAISES, run, usage_error

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("args", "modules", "expected"),
    [
        pytest.param(
            ["--impl=nope"], {},
            ["--impl=nope", "no implementation is called 'nope'", "Available: blocking, select",
             "'package.module:factory'", "ServerConfig"],
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
            ["--impl=broken:make_server"], {"broken": START_RAISES},
            ["--impl=broken:make_server", "start() raised OSError: no sockets today"],
            id="start-raises",
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


def test_start_that_hangs_is_a_usage_error_within_the_scaled_deadline(
    pytester: pytest.Pytester,
) -> None:
    """Smoke start: 5 s x 0.2. In a subprocess: the stuck start() thread never ends."""
    pytester.makepyfile(hangs=START_HANGS, test_never_runs="def test_x(): pass")
    began = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--impl=hangs:make_server",
        "--conformance-timeout-scale=0.2", timeout=30,
    )
    elapsed = time.monotonic() - began
    text = usage_error(result)
    assert "--impl=hangs:make_server: start() did not return within 1 s" in text, text
    assert "--conformance-timeout-scale" in text, text
    assert elapsed < 4.5, f"took {elapsed:.1f} s: the 5 s smoke deadline was not scaled"
