"""`python -m tools.flamegraph`: a short smoke run writes a titled SVG; bad input, a py-spy
that is missing or cannot attach, and a SIGTERM mid-recording end with a message saying what
to do or what was stopped, with nothing left running. Never a timed assertion; the smoke run
is skipped, with py-spy's reason, where py-spy is not installed or may not read another
process (the other cases stand in a shell script for py-spy, and run everywhere).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools import flamegraph

# A deadline against a hang, generous for a loaded 2-core machine; the smoke run takes ~4 s.
RUN_DEADLINE = 120.0


def _flamegraph(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.flamegraph", *args],
                          capture_output=True, text=True, timeout=RUN_DEADLINE)


def test_a_short_run_writes_a_titled_flame_graph(tmp_path: Path) -> None:
    run = _flamegraph("--impl=select", "--workload=pingpong", "--duration=1",
                      "--connections=10", "--processes=1", f"--out={tmp_path}")
    if run.returncode == flamegraph.EXIT_MISSING:
        pytest.skip(run.stderr.strip())
    assert run.returncode == 0, run.stdout + run.stderr
    svg = tmp_path / "flame-select-pingpong.svg"
    text = svg.read_text()
    title = re.search(r'<text id="title"[^>]*>([^<]*)</text>', text)
    assert title is not None, text[:2000]
    assert title.group(1).startswith("select, pingpong, workers=1: "), title.group(1)
    samples = int(re.search(r'total_samples="(\d+)"', text).group(1))  # type: ignore[union-attr]
    assert samples > 0 and f"{samples:,} samples" in title.group(1)
    assert "(10 connections, 1 generator processes)" in text  # the notes: the whole story
    # The server's own loop is in the graph, and the frames add up.
    spent = flamegraph.self_samples(text)
    assert any("SelectServer" in name for name in spent), spent
    assert sum(spent.values()) == samples
    assert str(svg) in run.stdout


def test_unknown_implementation_is_a_usage_error() -> None:
    run = _flamegraph("--impl=no_such_model")
    assert run.returncode == 2
    assert "no implementation is called 'no_such_model'" in run.stderr


@pytest.mark.parametrize(("bad", "said"), [
    (["--impl=select", "--workload=stream"], "argument --workload: invalid choice: 'stream'"),
    (["--impl=select", "--duration=0"], "--duration must be at least 1"),
    (["--impl=select", "--workers=0"], "--workers must be at least 1"),
    (["--baseline=nope"], "argument --baseline: invalid choice: 'nope'"),
    (["--workload=churn"], "one of the arguments --baseline --impl is required"),
])
def test_bad_options_are_usage_errors(bad: list[str], said: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = flamegraph.main(bad)
    except SystemExit as exc:  # argparse's own: an unknown choice, a missing option
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert said in err, err


def test_without_py_spy_it_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    assert flamegraph.main(["--impl=select"]) == flamegraph.EXIT_MISSING
    err = capsys.readouterr().err
    assert "py-spy is not installed" in err and "pip install py-spy" in err, err


def test_when_py_spy_cannot_attach_it_says_what_to_do_and_stops_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A py-spy that fails as it does where ptrace is not allowed: the message says how to
    allow it, and the echo server started for the run is gone (SIGTERM, reaped)."""
    fake = tmp_path / "py-spy"
    fake.write_text("#!/bin/sh\n"
                    "echo 'Error: Failed to get process executable name.' >&2\n"
                    "echo 'Caused by:' >&2\n"
                    "echo '    0: Permission denied (os error 13)' >&2\n"
                    "exit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(flamegraph, "find_py_spy", lambda: str(fake))
    assert flamegraph.main(["--impl=select", f"--out={tmp_path}"]) == flamegraph.EXIT_MISSING
    err = capsys.readouterr().err
    assert "cannot attach to the server" in err and "Permission denied" in err, err
    assert "ptrace_scope" in err and "SYS_PTRACE" in err, err
    pid = int(re.search(r"\(pid (\d+)\)", err).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not list(tmp_path.glob("*.svg"))


def _children() -> list[str]:
    """This process's live children, but multiprocessing's resource tracker (it lives as
    long as the process that first spawned a worker)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = proc.read_text().rsplit(")", 1)[1].split()
            cmdline = (proc.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and "resource_tracker" not in cmdline:
            found.append(cmdline)
    return found


def test_sigterm_mid_recording_stops_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM while py-spy records (sent by a stand-in py-spy, so it comes exactly then):
    the server, the load generator and py-spy are all stopped, no graph is left, exit 143."""
    fake = tmp_path / "py-spy"
    fake.write_text("#!/bin/sh\n"
                    "[ \"$1\" = dump ] && exit 0\n"
                    f"echo \"$3\" > {tmp_path}/server.pid\n"
                    "kill -TERM $PPID\n"
                    "exec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(flamegraph, "find_py_spy", lambda: str(fake))
    before = _children()
    code = flamegraph.main(["--impl=select", "--duration=1", "--connections=4", "--processes=1",
                            f"--out={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 143 and "SIGTERM: the server, the load and py-spy were stopped" in err, err
    server = int((tmp_path / "server.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(server, 0)
    assert _children() == before
    assert not list(tmp_path.glob("*.svg"))
