"""`python -m impls.echo`: serves on each built-in, and stops cleanly on SIGTERM or SIGINT (S11).

Each case runs the echo server in a subprocess, as a user would, echoes one message through
it, sends SIGTERM and requires exit 0 -- which the server gives only after stop() returned
with every session it saw released and every thread ended.
"""

from __future__ import annotations

import re
import selectors
import signal
import socket
import subprocess
import sys
import time

import pytest

from conformance._loading import builtins

BUILTINS = builtins()

# Starting a Python process and importing a model; generous for a loaded 2-core machine.
START_DEADLINE = 30.0
# The echo server's own limit on stop() is 30 s; past it, it exits 1 by itself.
EXIT_DEADLINE = 40.0
_LISTENING = re.compile(rb"listening on (\S+):(\d+)")


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "impls.echo", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _address(proc: subprocess.Popen[bytes]) -> tuple[str, int]:
    """The address from the server's first line, or fail with what it printed instead."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_DEADLINE
    seen = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                pytest.fail(f"no address within {START_DEADLINE} s; printed {seen!r}")
            chunk = proc.stdout.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                _, err = proc.communicate(timeout=EXIT_DEADLINE)
                pytest.fail(f"exited {proc.returncode} before listening: {err.decode()}")
            seen += chunk
    found = _LISTENING.search(seen)
    assert found, seen
    return found.group(1).decode(), int(found.group(2))


@pytest.mark.parametrize(("impl", "signum"), [
    *[(impl, signal.SIGTERM) for impl in BUILTINS],
    ("select", signal.SIGINT),  # Ctrl-C
])
def test_echoes_and_stops_on_a_signal(impl: str, signum: signal.Signals) -> None:
    proc = _start(f"--impl={impl}")
    try:
        host, port = _address(proc)
        message = b"the notes' assignment " * 100
        with socket.create_connection((host, port), timeout=START_DEADLINE) as peer:
            peer.sendall(message)
            echoed = b""
            while len(echoed) < len(message):
                chunk = peer.recv(65536)
                assert chunk, f"closed after {len(echoed)} of {len(message)} bytes"
                echoed += chunk
            assert echoed == message
            # The signal with the session still open: stop() must release it.
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=EXIT_DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"sessions served: 1, every one released" in out, out


def test_bad_input_ends_with_a_message() -> None:
    unknown = subprocess.run([sys.executable, "-m", "impls.echo", "--impl=no_such_model"],
                             capture_output=True, timeout=EXIT_DEADLINE)
    assert unknown.returncode == 2
    assert b"no implementation is called 'no_such_model'" in unknown.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        in_use = subprocess.run(
            [sys.executable, "-m", "impls.echo", "--impl=select", f"--port={port}"],
            capture_output=True, timeout=EXIT_DEADLINE)
    assert in_use.returncode == 2
    assert b"Address already in use" in in_use.stderr, in_use.stderr
    not_a_factory = subprocess.run(
        [sys.executable, "-m", "impls.echo", "--impl=impls.echo:EchoApp"],
        capture_output=True, timeout=EXIT_DEADLINE)
    assert not_a_factory.returncode == 2
    assert b"cannot be called with a ServerConfig" in not_a_factory.stderr, not_a_factory.stderr
