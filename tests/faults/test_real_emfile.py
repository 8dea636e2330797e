"""A real EMFILE, for the reference models: what the injected `emfile` step stands for.

Each model runs in a subprocess whose descriptor limit (RLIMIT_NOFILE) is lowered and then
filled, so its accept() really fails with EMFILE. The clients connect from this process
meanwhile, and wait in the server's backlog. Over a second at the limit the server process
must want far less than a core (S6, measured as the suite measures it, `conformance._cpu`);
once the filler descriptors are closed, every waiting client must be accepted -- with no new
connect to announce them (S10).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from conformance.suite.test_s06_s07_backpressure import SPIN_FRACTION

ROOT = Path(__file__).resolve().parents[2]
MODELS = ["blocking", "select_", "epoll_et", "iocp", "trio_"]
CLIENTS = 5
# The whole exchange with one child takes about 1.5 s; this bounds a child that hangs.
WATCHDOG = 60.0

SERVER = textwrap.dedent("""
    import os, resource, sys, threading
    from conformance._cpu import measure_busy
    from conformance.api import ServerConfig
    from impls.{model} import make_server

    class Handler:
        def __init__(self):
            self.connected = 0
            self.cond = threading.Condition()
        def on_connect(self, sid, peer):
            with self.cond:
                self.connected += 1
                self.cond.notify_all()
        def on_recv(self, sid, data):
            pass
        def on_release(self, sid):
            pass

    handler = Handler()
    server = make_server(ServerConfig())
    host, port = server.start(handler, "127.0.0.1", 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    filler = []
    try:
        while len(filler) < 256:  # bounded: the limit is 256
            filler.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass  # EMFILE: not one descriptor left
    print(port, flush=True)
    sys.stdin.readline()  # the clients are connected (they wait in the backlog)
    busy = measure_busy(1.0)  # the server's threads, over a second at the limit
    for fd in filler:
        os.close(fd)
    with handler.cond:
        handler.cond.wait_for(lambda: handler.connected >= {clients}, 5.0)
    print(f"{{busy.cores:.4f}} {{handler.connected}} {{len(filler)}}", flush=True)
    server.stop()
""")


@pytest.mark.parametrize("model", MODELS)
def test_real_emfile_neither_spins_nor_strands(model: str) -> None:
    code = SERVER.format(model=model, clients=CLIENTS)
    with subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        clients: list[socket.socket] = []
        watchdog = threading.Timer(WATCHDOG, proc.kill)  # a hung child ends readline() too
        watchdog.start()
        try:
            port = int(proc.stdout.readline())
            clients = [socket.create_connection(("127.0.0.1", port), timeout=5)
                       for _ in range(CLIENTS)]
            proc.stdin.write("connected\n")
            proc.stdin.flush()
            result = proc.stdout.readline().split()
            _, err = proc.communicate(timeout=WATCHDOG)
        finally:
            watchdog.cancel()
            for c in clients:
                c.close()
            if proc.poll() is None:
                proc.kill()
    assert len(result) == 3, err[-2000:]
    fraction, accepted, filled = float(result[0]), int(result[1]), int(result[2])
    assert filled > 0, "the limit was not reached"
    assert fraction < SPIN_FRACTION, f"{model}: {fraction:.0%} of a core at the limit (S6)"
    assert accepted == CLIENTS, f"{model}: {accepted} of {CLIENTS} accepted (S10)\n{err[-2000:]}"
