"""`--impl=exec:COMMAND`: a program that misbehaves is a clause verdict, never a hang (#10).

One pytest run in a subprocess plays an echo scenario against `tests/exec/misbehave.py` in
each of its modes (one `exec:` implementation per mode). Each must fail its clause with what
was awaited and the program's stderr tail in the failure, within a few deadlines; afterwards
no process any mode started may be alive.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
MISBEHAVE = ROOT / "tests" / "exec" / "misbehave.py"

# At scale 0.3: start() gets 1.5 s (the adapter 1.2 s), the echo 1.5 s, a command 0.6 s.
SCALE = "0.3"
# Eight modes, most waiting out a deadline or two of the above, plus 16 interpreter starts.
RUN_LIMIT = 120

ECHO_TEST = """
import pytest

from conformance._apps import echo


@pytest.mark.clause("S3")
def test_echo(conformance):
    with conformance.scenario(on_recv=echo) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(b"hello")
        sc.drive([peer], until=lambda: len(peer.received) >= 5, clause="S3",
                 expected="the echo of hello", session_ids=[sid])
        sc.settle(peer)
"""

# mode -> (the clause that fails, what the failure must say: the awaited thing and the cause)
MODES: dict[str, tuple[str, list[str]]] = {
    "exit-at-start": ("S10", ["awaited the program's HELLO frame",
                              "exited with status 3", "cannot read my configuration file"]),
    "slow-start": ("S10", ["awaited the program's HELLO frame (within 1.2 s",
                           "is still running", "warming up the caches"]),
    "wrong-version": ("S10", ["speaks wire protocol version 2; this suite speaks 1",
                              "speaking version 2"]),
    "crash-mid-session": ("S3", ["expected: the echo of hello", "was killed by SIGABRT",
                                 "assertion failed on session"]),
    "garbage": ("S3", ["expected: the echo of hello", "does the program print to stdout?",
                       "printing a debug line on stdout"]),
    "silent": ("S3", ["expected: the echo of hello", "awaited RESULT for SEND(",
                      "no more answers from here on"]),
    "no-exit": ("S11", ["awaited the program to exit once its stdin closed",
                        "did not exit within", "I keep running"]),
    "child": ("S11", ["awaited the program to exit once its stdin closed",
                      "left processes of its group running", "started a helper process"]),
}


def _impl(mode: str) -> str:
    return f"exec:{shlex.join([sys.executable, str(MISBEHAVE), f'--mode={mode}'])}"


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_misbehaving_program_fails_its_clause_and_leaves_nothing_behind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pids = pytester.path / "pids.txt"
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("MISBEHAVE_PIDS", str(pids))
    pytester.makepyfile(test_echo=ECHO_TEST)
    began = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", f"--impl={','.join(map(_impl, MODES))}",
        f"--conformance-timeout-scale={SCALE}", "--junitxml=junit.xml", timeout=RUN_LIMIT,
    )
    took = time.monotonic() - began
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    result.assert_outcomes(failed=len(MODES))

    cases = {case.get("name", ""): case
             for case in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    for mode, (clause, needles) in MODES.items():
        case = cases[f"test_echo[{_impl(mode)}]"]
        failure = case.find("failure")
        assert failure is not None, mode
        text = f"{failure.get('message', '')}\n{failure.text or ''}"
        assert f"{clause} " in text.split("Falsifying")[0], (mode, text)
        missing = [n for n in needles if n not in text]
        assert not missing, (mode, missing, text)
        # No hang: a mode costs at most a few of the deadlines above, never a watchdog's 60 s.
        assert float(case.get("time", "0")) < 10, (mode, case.get("time"))
    assert took < RUN_LIMIT

    started = [line.split() for line in pids.read_text().splitlines()]
    assert {role for _, role in started} >= {*MODES, "child"}, started
    alive = [(int(pid), role) for pid, role in started if _alive(int(pid))]
    assert not alive, f"left behind: {alive}"


def test_the_program_runs_with_the_arguments_and_environment_given() -> None:
    """exec_server(argv, env): the Python API an `impl` fixture or entry point uses."""
    from conformance import exec_server
    from conformance._exec import ExecServer, parse_exec
    from conformance.api import ServerConfig

    factory = exec_server([sys.executable, "-m", "impls.wire", "--impl=select"],
                          extra_env={"PYTHONPATH": str(ROOT), "WIRE_TEST": "1"})
    server = factory(ServerConfig())
    assert isinstance(server, ExecServer)
    assert server.argv[-1] == "--impl=select"
    assert server.env is not None and server.env["WIRE_TEST"] == "1"
    assert server.env["PATH"] == os.environ["PATH"]
    spec = parse_exec(f"exec:{shlex.quote(sys.executable)} -m impls.wire --name 'a b'")
    assert spec is not None
    named = spec(ServerConfig())
    assert isinstance(named, ExecServer)
    assert named.argv == [sys.executable, "-m", "impls.wire", "--name", "a b"]
    assert parse_exec("epoll") is None


@pytest.mark.parametrize(("spec", "says"), [
    ("exec:", "no command after 'exec:'"),
    ("exec:./no-such-server --port 1", "cannot run './no-such-server' (no such file"),
    ("exec:no-such-server-on-path", "cannot run 'no-such-server-on-path' (not on PATH)"),
    ("exec:'unclosed", "cannot be split into words"),
])
def test_a_command_that_cannot_run_is_a_usage_error(spec: str, says: str) -> None:
    from conformance._loading import ImplError, resolve

    with pytest.raises(ImplError, match=re.escape(says)):
        resolve(spec)


#: Two properties, one example each: the FIN rule (a reply from inside the last on_recv,
#: then the peer's FIN: RETURNED) and S11's leak check measured on the program.
OVER_THE_WIRE = """
import pytest

from conformance.faults import FaultPlan
from conformance.suite.test_s11_stop import test_s11_no_leaks_across_cycles as leaks
from conformance.suite.test_s13_reentrancy import test_s13_calls_from_inside_callbacks as calls


@pytest.mark.clause("S13")
def test_calls(conformance):
    calls.hypothesis.inner_test(conformance, n=2, disconnect_in_recv=False, faults=FaultPlan(()))


@pytest.mark.clause("S11")
def test_leaks(conformance):
    leaks.hypothesis.inner_test(conformance, sessions=2)
"""


def test_the_python_program_passes_and_a_leak_in_the_program_is_caught(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`impls.wire` wrapping select passes; wrapping a select server whose start() leaves a
    thread behind (tests/exec/leaky.py), it fails S11 on the program's own thread count."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_wire=OVER_THE_WIRE)
    good = f"exec:{shlex.quote(sys.executable)} -m impls.wire --impl=select"
    leaky = (f"exec:{shlex.quote(sys.executable)} -m impls.wire "
             "--impl=tests.exec.leaky:make_server")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", f"--impl={good},{leaky}",
        "--junitxml=junit.xml", timeout=RUN_LIMIT)
    output = "\n".join(result.outlines + result.errlines)
    cases = {case.get("name", ""): case.find("failure")
             for case in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    assert cases[f"test_calls[{good}]"] is None, output
    assert cases[f"test_leaks[{good}]"] is None, output
    failure = cases[f"test_leaks[{leaky}]"]
    assert failure is not None, output
    text = failure.text or ""
    assert "S11 " in text and re.search(r"\d+ threads, \d+ when it said HELLO", text), text
