"""The load generator: worker processes, each driving its share of the connections.

No packaged tool fits: wrk speaks HTTP, iperf streams one way, and neither does one-message-
at-a-time echo with a round-trip time per message. So the generator is Python, kept lean
(raw `select.epoll`, level-triggered, one `recv_into` and one `send` per message, no
per-message allocation but the latency sample) and spread over processes, and it reports its
own CPU with every result: `Generators.run` returns each worker's CPU seconds in the window,
so the report can show its ceiling (messages per generator CPU-second) next to the fastest
server's.

How a phase runs, every step under a deadline:

1. the parent sends each worker a `Job`; the worker connects its share and answers "ready"
   (an error instead if a connect or the first echo fails);
2. once all are ready, the parent sends "go" with the window [start, end) -- both on the
   machine's monotonic clock, which every process shares -- and the workers run the workload
   from then on, counting only what completes inside the window (the time before `start` is
   a warm-up);
3. each worker answers with an `Outcome`; a connection that waits `stall` seconds with no
   byte of progress is an error that names it (the server stopped echoing).
"""

from __future__ import annotations

import errno
import multiprocessing
import multiprocessing.connection
import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Generators", "Job", "LoadError", "Outcome", "open_idle"]

T = TypeVar("T")

# How often a worker looks for stalled connections while waiting in epoll.
_STALL_CHECK = 0.25
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT


class LoadError(Exception):
    """The phase could not be measured; the message says what the server did."""


@dataclass(frozen=True)
class Job:
    workload: str  # "pingpong" | "stream" | "churn"
    host: str
    port: int
    connections: int  # this worker's share; for churn, connections open at once
    size: int  # bytes per message
    stall: float  # seconds a connection may wait with no progress
    connect_deadline: float


@dataclass
class Outcome:
    count: int = 0  # echoes completed in the window (churn: connections completed)
    nbytes: int = 0  # bytes echoed back in the window
    latencies_ns: list[int] = field(default_factory=list)  # round trips, ping-pong only
    cpu: float = 0.0  # this worker's CPU seconds over the window
    window: float = 0.0


# ---- the parent's side


class Generators:
    """`processes` worker processes, started once and reused for every phase."""

    def __init__(self, processes: int) -> None:
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.processes = processes
        self._workers: list[tuple[multiprocessing.process.BaseProcess,
                                  multiprocessing.connection.Connection]] = []

    def __enter__(self) -> Generators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure(self) -> None:
        while len(self._workers) < self.processes:
            here, there = self._ctx.Pipe()
            proc = self._ctx.Process(target=_worker, args=(there,), daemon=True,
                                     name=f"bench-load-{len(self._workers)}")
            proc.start()
            there.close()
            self._workers.append((proc, here))

    def close(self) -> None:
        for proc, conn in self._workers:
            try:
                conn.send(("exit",))
            except OSError:
                pass
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self._workers = []

    def run(self, jobs: list[Job], warmup: float, duration: float,
            during: Callable[[float, float], T]) -> tuple[list[Outcome], T]:
        """Run one job per worker; `during(start, end)` runs in the parent meanwhile (it
        measures the server over the window). Raises LoadError, with the workers restarted,
        when a worker reports an error or misses a deadline."""
        self._ensure()
        workers = self._workers[:len(jobs)]
        try:
            for (_, conn), job in zip(workers, jobs, strict=True):
                conn.send(("job", job))
            # The workers' own deadline first: their message says which connection failed.
            connect = max(job.connect_deadline for job in jobs) + 5.0
            for i, (_, conn) in enumerate(workers):
                self._expect(conn, "ready", connect, f"worker {i} connecting")
            start = time.monotonic() + warmup
            end = start + duration
            for _, conn in workers:
                conn.send(("go", start, end))
            measured = during(start, end)
            stall = max(job.stall for job in jobs)
            outcomes: list[Outcome] = []
            for i, (_, conn) in enumerate(workers):
                left = end - time.monotonic() + stall + 5.0
                outcomes.append(self._expect(conn, "done", left, f"worker {i} measuring"))
            return outcomes, measured
        except BaseException:
            self._restart()
            raise

    def _expect(self, conn: multiprocessing.connection.Connection, kind: str,
                timeout: float, what: str) -> Any:
        if not conn.poll(max(0.0, timeout)):
            raise LoadError(f"the load generator ({what}) got nowhere in {timeout:.1f} s")
        try:
            message = conn.recv()
        except (EOFError, OSError):
            raise LoadError(f"the load generator ({what}) died") from None
        if message[0] == "error":
            raise LoadError(message[1])
        assert message[0] == kind, message
        return message[1] if len(message) > 1 else None

    def _restart(self) -> None:
        """After an error some workers may be mid-job: start afresh rather than untangle."""
        for proc, conn in self._workers:
            proc.kill()
            proc.join()
            conn.close()
        self._workers = []


def open_idle(host: str, port: int, count: int, deadline: float,
              stall: float) -> list[socket.socket]:
    """`count` connections that each echoed one byte -- so each is a session the server
    holds -- and then stay silent. The caller closes them."""
    limit = time.monotonic() + deadline
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection((host, port), timeout=_left(limit)))
        for sock in socks:
            sock.sendall(b".")
        for i, sock in enumerate(socks):
            sock.settimeout(min(_left(limit), stall))
            try:
                echoed = sock.recv(1)
            except TimeoutError:
                raise LoadError(f"idle connections: the server stopped echoing: connection "
                                f"{i} of {count} got no echo for {stall:.1f} s") from None
            if echoed != b".":
                raise LoadError(f"idle connection {i} of {count} was closed by the server")
    except BaseException as exc:
        _close_all(socks)
        if isinstance(exc, TimeoutError):
            raise LoadError(f"opening {count} idle connections took over {deadline:.0f} s "
                            f"(the server holds fewer sessions than that?)") from None
        if isinstance(exc, OSError):
            raise LoadError(f"opening {count} idle connections: {exc}") from None
        raise
    return socks


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def _left(limit: float) -> float:
    left = limit - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


# ---- the worker's side


def _worker(conn: multiprocessing.connection.Connection) -> None:
    try:
        _serve_jobs(conn)
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group: the parent reports it


def _serve_jobs(conn: multiprocessing.connection.Connection) -> None:
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "exit":
            return
        job: Job = message[1]
        try:
            outcome = _run(job, conn)
        except LoadError as exc:
            conn.send(("error", str(exc)))
        except OSError as exc:
            conn.send(("error", f"{job.workload}: {type(exc).__name__}: {exc}"))
        else:
            conn.send(("done", outcome))


def _run(job: Job, conn: multiprocessing.connection.Connection) -> Outcome:
    if job.workload == "churn":
        conn.send(("ready",))
        start, end = _go(conn, job)
        return _churn(job, start, end)
    socks = _connect(job)
    try:
        conn.send(("ready",))
        start, end = _go(conn, job)
        return _echo(job, socks, start, end)
    finally:
        _close_all(socks)


def _go(conn: multiprocessing.connection.Connection, job: Job) -> tuple[float, float]:
    if not conn.poll(job.connect_deadline + 30.0):
        raise LoadError("the bench never said go")
    message = conn.recv()
    assert message[0] == "go", message
    return message[1], message[2]


def _connect(job: Job) -> list[socket.socket]:
    limit = time.monotonic() + job.connect_deadline
    socks: list[socket.socket] = []
    try:
        for _ in range(job.connections):
            sock = socket.create_connection((job.host, job.port), timeout=_left(limit))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            socks.append(sock)
    except TimeoutError:
        _close_all(socks)
        raise LoadError(f"{job.workload}: {len(socks)} of {job.connections} connections "
                        f"were made in {job.connect_deadline:.0f} s") from None
    except OSError as exc:
        _close_all(socks)
        raise LoadError(f"{job.workload}: connection {len(socks)} of {job.connections} "
                        f"failed: {exc}") from None
    return socks


class _Conn:
    __slots__ = ("got", "inbuf", "out", "progress", "sent", "sock", "view", "writing")

    def __init__(self, sock: socket.socket, size: int) -> None:
        self.sock = sock
        self.inbuf = bytearray(size)
        self.view = memoryview(self.inbuf)
        self.got = 0
        self.out = memoryview(b"")
        self.sent = 0  # ns: when the message in flight was sent
        self.progress = 0  # ns: the last byte in either direction
        self.writing = False  # EPOLLOUT registered: connecting, or a message partly sent


def _echo(job: Job, socks: list[socket.socket], start: float, end: float) -> Outcome:
    """Ping-pong and stream: each connection sends one message, waits for all of it back,
    checks it, sends the next."""
    payload = bytes(i % 251 for i in range(job.size))  # a pattern: a shifted echo shows
    whole = memoryview(payload)
    size = job.size
    start_ns, end_ns = int(start * 1e9), int(end * 1e9)
    stall_ns = int(job.stall * 1e9)
    out = Outcome()
    lat = out.latencies_ns if job.workload == "pingpong" else None
    conns: dict[int, _Conn] = {}
    with select.epoll() as ep:

        def send(c: _Conn, now: int) -> None:
            try:
                n = c.sock.send(c.out)
            except BlockingIOError:
                n = 0
            if n:
                c.progress = now
            c.out = c.out[n:]
            if bool(c.out) != c.writing:  # level-triggered: ask for OUT only while needed
                c.writing = not c.writing
                ep.modify(c.sock.fileno(), _IN | _OUT if c.writing else _IN)

        now = time.monotonic_ns()
        for sock in socks:
            c = conns[sock.fileno()] = _Conn(sock, size)
            ep.register(sock.fileno(), _IN)
            c.out, c.sent, c.progress = whole, now, now
            send(c, now)
        # Every connection has a message in flight until, after the window, its last echo is
        # back: a server that stops echoing near the end cannot pass for one that finished.
        waiting = set(conns)
        window = _Window(start_ns, end_ns)
        next_check = now + int(_STALL_CHECK * 1e9)
        while waiting:
            events = ep.poll(_STALL_CHECK)
            now = time.monotonic_ns()
            window.tick(now)
            for fd, mask in events:
                c = conns[fd]
                if mask & _OUT and c.out:
                    send(c, now)
                if not mask & (_IN | select.EPOLLERR | select.EPOLLHUP):
                    continue
                if not _received(job, c, payload, now):
                    continue
                if window.start_ns <= now < window.end_ns:
                    out.count += 1
                    if lat is not None:
                        lat.append(now - c.sent)
                if window.over:
                    waiting.discard(fd)
                    continue
                c.sent = now
                # The whole echo is back, so the whole message went out: nothing is queued.
                try:
                    n = c.sock.send(payload)
                except BlockingIOError:
                    n = 0
                if n < size:  # a big message the socket took only part of
                    c.out = whole[n:]
                    c.writing = True
                    ep.modify(fd, _IN | _OUT)
            if now >= next_check:
                next_check = now + int(_STALL_CHECK * 1e9)
                _check_stall(job, [conns[fd] for fd in waiting], now, stall_ns)
        window.close(out)
        out.nbytes = out.count * size
    return out


class _Window:
    """The measured window as this worker saw it: its CPU time and length between the first
    wakeup at or after `start_ns` and the first at or after `end_ns`."""

    def __init__(self, start_ns: int, end_ns: int) -> None:
        self.start_ns, self.end_ns = start_ns, end_ns
        self.cpu0: float | None = None
        self.cpu1: float | None = None
        self.over = False

    def tick(self, now: int) -> None:
        if self.cpu0 is None and now >= self.start_ns:
            self.cpu0, self.start_ns = time.process_time(), now
        if not self.over and now >= self.end_ns:
            self.cpu1, self.end_ns, self.over = time.process_time(), now, True

    def close(self, out: Outcome) -> None:
        if self.cpu0 is not None and self.cpu1 is not None:
            out.cpu = self.cpu1 - self.cpu0
            out.window = (self.end_ns - self.start_ns) / 1e9


def _received(job: Job, c: _Conn, payload: bytes, now: int) -> bool:
    """Read what is there; True once the whole echo is back (and checked)."""
    n = c.sock.recv_into(c.view[c.got:] if c.got else c.view)
    if n == 0:
        raise LoadError(f"{job.workload}: the server closed a connection after echoing "
                        f"{c.got} of a {job.size}-byte message")
    c.got += n
    c.progress = now
    if c.got < job.size:
        return False
    if c.inbuf != payload:
        raise LoadError(f"{job.workload}: the echo differs from what was sent")
    c.got = 0
    return True


def _check_stall(job: Job, conns: list[_Conn], now: int, stall_ns: int) -> None:
    for i, c in enumerate(conns):
        if now - c.progress > stall_ns:
            raise LoadError(
                f"{job.workload}: the server stopped echoing: connection {i} got no byte "
                f"for {job.stall:.1f} s ({c.got} of a {job.size}-byte message back)")


def _churn(job: Job, start: float, end: float) -> Outcome:
    """Connect, echo one message, close; `job.connections` such clients at once."""
    payload = bytes(i % 251 for i in range(job.size))
    size = job.size
    start_ns, end_ns = int(start * 1e9), int(end * 1e9)
    stall_ns = int(job.stall * 1e9)
    out = Outcome()
    conns: dict[int, _Conn] = {}
    with select.epoll() as ep:

        def open_one(now: int) -> None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex((job.host, job.port))
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                raise LoadError(f"churn: connect failed: {os.strerror(code)}")
            c = conns[sock.fileno()] = _Conn(sock, size)
            c.progress = c.sent = now
            c.writing = True
            ep.register(sock.fileno(), _OUT)

        now = time.monotonic_ns()
        for _ in range(job.connections):
            open_one(now)
        window = _Window(start_ns, end_ns)
        next_check = now + int(_STALL_CHECK * 1e9)
        while conns:  # after the window, until the last client's echo is back
            events = ep.poll(_STALL_CHECK)
            now = time.monotonic_ns()
            window.tick(now)
            for fd, _mask in events:
                c = conns[fd]
                if c.writing:  # connected (or refused)
                    code = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise LoadError(f"churn: connect failed: {os.strerror(code)}")
                    c.sock.send(payload)  # a fresh socket's buffer takes one small message
                    c.writing = False
                    c.progress = now
                    ep.modify(fd, _IN)
                    continue
                if not _received(job, c, payload, now):
                    continue
                ep.unregister(fd)
                del conns[fd]
                c.sock.close()
                if window.start_ns <= now < window.end_ns:
                    out.count += 1
                if not window.over:
                    open_one(now)
            if now >= next_check:
                next_check = now + int(_STALL_CHECK * 1e9)
                _check_stall(job, list(conns.values()), now, stall_ns)
        window.close(out)
        out.nbytes = out.count * size
    return out
