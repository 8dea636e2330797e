"""Regression tests, one per bug found in the plugin and loader while they were built.

Each states the intended behaviour: drive failures name the deadline they were given; skips
and xfails give no clause a verdict; the timeout scale must be finite; loading builds no
socket; start() must return the address it bound.
"""

from __future__ import annotations

import pytest

from ._support import (
    LOSSY,
    MYIMPL,
    S4_TEST,
    S5_TEST,
    START_RETURNS_NONE,
    run,
    summary_row,
    usage_error,
)

pytest_plugins = ["pytester"]


def test_failed_drive_names_the_deadline_it_was_given(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(lossy=LOSSY, test_s4=S4_TEST)
    pytester.syspathinsert()
    result = run(pytester, "--impl=lossy:make_server")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*expected: the peer to receive the 100 accepted bytes (within 0.5 s)*"]
    )


def test_skipped_and_xfailed_tests_are_not_ok(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        myimpl=MYIMPL,
        test_not_passed="""
import pytest


@pytest.mark.clause("S7")
def test_skipped_inside(conformance):
    pytest.skip("not supported here")


@pytest.mark.clause("S8")
@pytest.mark.xfail(reason="known bug")
def test_known_bug(conformance):
    raise AssertionError("S8 broken")
""",
    )
    pytester.syspathinsert()
    result = run(pytester, "--impl=myimpl:make_server")
    result.assert_outcomes(skipped=1, xfailed=1)
    row = summary_row(result, "myimpl:make_server")
    assert row["S7"] != "ok" and row["S8"] != "ok", row


@pytest.mark.parametrize("scale", ["nan", "inf"])
def test_timeout_scale_must_be_finite(pytester: pytest.Pytester, scale: str) -> None:
    # No --impl here: with one, the in-process smoke start() would leak a running server.
    usage_error(run(pytester, f"--conformance-timeout-scale={scale}"))


def test_loading_an_implementation_leaks_no_socket(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s5=S5_TEST)
    result = run(
        pytester,
        "--impl=select",
        "-W", "error::ResourceWarning",
        "-W", "error::pytest.PytestUnraisableExceptionWarning",
    )
    result.assert_outcomes(passed=1)


def test_start_must_return_the_address(pytester: pytest.Pytester) -> None:
    """In a subprocess: today each test leaks a running server."""
    pytester.makepyfile(noaddr=START_RETURNS_NONE, test_s5=S5_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--impl=noaddr:make_server", timeout=30
    )
    text = usage_error(result)
    assert "start()" in text and "None" in text, text
