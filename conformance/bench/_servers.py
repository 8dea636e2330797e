"""The servers under test, each in a process of its own, and the baselines they are held to.

A server runs as a child process -- `python -m impls.echo --impl=NAME` for an implementation,
`python -m conformance.bench._servers KIND` for a baseline -- so the kernel keeps its CPU time
apart from the load generator's: `/proc/<pid>/stat` gives it (utime + stime, every thread).
psutil would read the same two fields; the suite already reads /proc (`conformance/_cpu.py`,
`_kernel.py`) and runs only on Linux (epoll), so a dependency would buy nothing here.

Baselines, all echo servers with no Session layer:

- `asyncio`: an `asyncio.Protocol` whose `data_received` writes the data back -- the echo
  server most Python programmers would write. Every implementation is reported as a ratio to
  it, measured in the same run.
- `uvloop`: the same protocol on uvloop's loop (libuv), when uvloop is installed.
- `selectors`: a bare level-triggered `selectors` loop with the syscalls the epoll model
  makes (accept, recv, send, close), and nothing else: what the Session layer costs is the
  gap between it and the epoll model, per server CPU-second.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.util
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

__all__ = ["BASELINES", "ServerProcess", "ServerSpec", "StartError", "baselines_available"]

BASELINES = ("asyncio", "uvloop", "selectors")
_LISTENING = re.compile(r"listening on (\S+):(\d+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Where the package lives, so a child imports this checkout's code, not another install's.
_ROOT = str(Path(__file__).resolve().parents[2])


def baselines_available() -> list[str]:
    """The baselines this machine can run: uvloop only where it is installed."""
    return [b for b in BASELINES if b != "uvloop" or importlib.util.find_spec("uvloop")]


@dataclass(frozen=True)
class ServerSpec:
    """A server to measure: a baseline or an implementation, and what limits it."""

    name: str  # as the tables and the JSON show it: "epoll", or "epoll w2" in a --workers list
    baseline: bool
    fd_setsize: int | None = None  # select(): no descriptor at or above this can be watched
    impl: str = ""  # what --impl names, when it is not `name`
    workers: int | None = None  # ServerConfig.workers; None: the implementation's own

    def command(self, host: str, port: int) -> list[str]:
        if self.baseline:
            return [sys.executable, "-m", "conformance.bench._servers", self.name,
                    f"--host={host}", f"--port={port}"]
        extra = [] if self.workers is None else [f"--workers={self.workers}"]
        return [sys.executable, "-m", "impls.echo", f"--impl={self.impl or self.name}",
                f"--host={host}", f"--port={port}", *extra]


class StartError(Exception):
    """A server that did not come up; the message says what it printed."""


class ServerProcess:
    """One running server: its address, its CPU time, and a stop that never hangs."""

    def __init__(self, spec: ServerSpec, proc: subprocess.Popen[bytes],
                 stderr: tempfile._TemporaryFileWrapper[bytes]) -> None:
        self.spec = spec
        self.proc = proc
        self._stderr = stderr
        self.address: tuple[str, int] = ("", 0)

    @classmethod
    def start(cls, spec: ServerSpec, host: str, port: int, deadline: float) -> ServerProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        # stderr to a file: a chatty server can never block on a full pipe nobody reads.
        stderr = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log")  # noqa: SIM115 (closed by stop/kill)
        proc = subprocess.Popen(spec.command(host, port), stdout=subprocess.PIPE,
                                stderr=stderr, env=env)
        server = cls(spec, proc, stderr)
        try:
            server.address = server._read_address(deadline)
        except StartError:
            server.kill()
            raise
        return server

    def _read_address(self, deadline: float) -> tuple[str, int]:
        assert self.proc.stdout is not None
        seen = b""
        limit = time.monotonic() + deadline
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in seen:
                left = limit - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise StartError(f"{self.spec.name}: printed no address within "
                                     f"{deadline:.0f} s{self._said(seen)}")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self.proc.wait(deadline)
                    raise StartError(f"{self.spec.name}: exited with code "
                                     f"{self.proc.returncode} before listening"
                                     f"{self._said(seen)}")
                seen += chunk
        found = _LISTENING.search(seen.decode(errors="replace"))
        if found is None:
            raise StartError(f"{self.spec.name}: its first line is not an address"
                             f"{self._said(seen)}")
        return found.group(1), int(found.group(2))

    def _said(self, stdout: bytes = b"") -> str:
        text = (stdout.decode(errors="replace") + self.stderr_tail()).strip()
        return f"; it printed:\n{text}" if text else ""

    def stderr_tail(self, lines: int = 12) -> str:
        try:
            text = Path(self._stderr.name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """user + system CPU of every thread of the server so far (clock-tick resolution)."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return float("nan")  # exited: the caller learns why from alive()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def alive(self) -> bool:
        return self.proc.poll() is None

    def death(self) -> str:
        """Why the server is gone, for an error message."""
        code = self.proc.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        return f"the server process {how}{self._said()}"

    def stop(self, deadline: float) -> str | None:
        """SIGTERM, then wait: None for a clean exit 0, else what went wrong (then killed)."""
        if not self.alive():
            return self.death()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.kill()
            return f"did not exit within {deadline:.0f} s of SIGTERM (killed){self._said()}"
        finally:
            self._close_pipes()
        if self.proc.returncode != 0:
            return f"stopped with exit code {self.proc.returncode}{self._said()}"
        return None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


# ---- the baselines themselves (run in the child: python -m conformance.bench._servers KIND)


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _serve_asyncio(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_EchoProtocol, host, port, backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bound = server.sockets[0].getsockname()
    _say(f"listening on {bound[0]}:{bound[1]}")
    await stop.wait()
    server.close()
    await server.wait_closed()


def _serve_selectors(host: str, port: int) -> None:
    """Level-triggered epoll via selectors: accept, recv, send, close, and nothing else."""
    listener = socket.create_server((host, port), backlog=1024)
    listener.setblocking(False)
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)  # the wakeup fd is what the loop sees
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    pending: dict[socket.socket, bytes] = {}  # what a short send() left over
    bound = listener.getsockname()
    _say(f"listening on {bound[0]}:{bound[1]}")

    def close(sock: socket.socket) -> None:
        sel.unregister(sock)
        pending.pop(sock, None)
        sock.close()

    def write(sock: socket.socket, data: bytes) -> None:
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            if sock not in pending:
                sel.modify(sock, selectors.EVENT_WRITE)  # stop reading until flushed
            pending[sock] = data[sent:]
        elif pending.pop(sock, None) is not None:
            sel.modify(sock, selectors.EVENT_READ)

    while True:
        for key, mask in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is wake_r:
                for conn in [k.fileobj for k in sel.get_map().values()]:
                    assert isinstance(conn, socket.socket)
                    conn.close()
                return
            if sock is listener:
                for _ in range(64):
                    try:
                        conn, _peer = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                if mask & selectors.EVENT_WRITE:
                    write(sock, pending[sock])
                elif data := sock.recv(65536):
                    write(sock, data)
                else:
                    close(sock)
            except OSError:
                close(sock)


def _say(message: str) -> None:
    print(f"conformance.bench baseline: {message}", flush=True)


def _main() -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.bench._servers")
    parser.add_argument("kind", choices=BASELINES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        if args.kind == "selectors":
            _serve_selectors(args.host, args.port)
        elif args.kind == "uvloop":
            import uvloop

            uvloop.run(_serve_asyncio(args.host, args.port))
        else:
            asyncio.run(_serve_asyncio(args.host, args.port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
            return 2
        raise
    _say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
