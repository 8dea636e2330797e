"""One benchmark run: every server, every workload, each phase under its deadlines.

Every server runs in its own process, and all of them start first (baselines first); then
each phase runs on each server in turn, under the same load. The figures of one run are
comparable with each other, and with nothing else: on a shared machine the spread between
runs is large, so only same-run ratios mean much.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ._load import Generators, Job, LoadError, Outcome, open_idle
from ._servers import ServerProcess, ServerSpec, StartError

__all__ = ["Result", "Run", "Settings", "machine"]

WORKLOADS = ("pingpong", "stream", "churn", "scaling")
UNITS = {"pingpong": "msg/s", "stream": "MB/s", "churn": "accepts/s", "scaling": "msg/s"}
# Descriptors a server process holds besides its sessions (stdio, listener, wakeups, ...):
# an FD_SETSIZE-limited server gets this many fewer sessions than FD_SETSIZE.
FD_MARGIN = 32
# A server must print its address within this long (start a Python process, import a model).
START_DEADLINE = 30.0
# SIGTERM to exit: impls.echo allows stop() 30 s on its own before it gives up.
STOP_DEADLINE = 40.0


@dataclass(frozen=True)
class Settings:
    """What a run measures, and how hard. `--quick` shrinks the windows and the idle levels."""

    connections: int = 100  # ping-pong
    message_size: int = 64
    stream_connections: int = 4
    stream_size: int = 64 * 1024
    churn_clients: int = 8  # connections open at once, over all generator processes
    scaling_active: int = 10
    idle_levels: tuple[int, ...] = (0, 100, 500, 1000)
    duration: float = 1.0  # measured window per phase
    warmup: float = 0.25
    stall: float = 5.0  # a connection with no progress for this long: stopped echoing
    processes: int = 2  # load generator processes
    host: str = "127.0.0.1"
    # ServerConfig.workers for the implementations, one row per value. One by default: the
    # generator takes the other core, and a CPython model runs one thread's Python at a time
    # (the GIL), so a second loop or worker only adds hand-offs (docs/performance.md).
    workers: tuple[int, ...] = (1,)
    workloads: tuple[str, ...] = WORKLOADS
    # Every phase measured this many times, round after round; the tables show the median.
    # One run moves by tens of per cent on a shared or virtual machine: a target is read on
    # several (docs/performance.md).
    rounds: int = 1

    def connect_deadline(self, connections: int) -> float:
        """Scales with the connections: a thread-per-session model starts two threads each."""
        return 10.0 + 0.02 * connections


@dataclass
class Result:
    """One server under one workload (and, for scaling, one idle level)."""

    server: str
    workload: str
    idle: int | None = None  # the level asked for (scaling only)
    idle_open: int | None = None  # idle connections actually held (less past FD_SETSIZE)
    status: str = "ok"  # ok | error | skipped
    error: str | None = None
    note: str | None = None
    unit: str = ""
    duration: float = 0.0  # seconds actually measured
    count: int = 0  # echoes (churn: connections) completed in the window
    rate: float = 0.0  # in `unit`
    p50_us: float | None = None
    p99_us: float | None = None
    server_cpu_s: float = 0.0
    rate_per_server_cpu_s: float | None = None  # `count` (or MB) per server CPU-second
    server_cpu_us_per_op: float | None = None
    generator_cpu_s: float = 0.0
    generator_cores: float = 0.0
    ratio_to_asyncio: float | None = None  # rate / asyncio's rate, same workload, same round
    cpu_ratio_to_asyncio: float | None = None  # the same for the rate per server CPU-second
    round: int = 0  # which round measured it (--rounds)
    # In `Run.summary()` only: how many rounds measured this cell, and the lowest and highest
    # ratio among them; the other fields are those of the median round.
    rounds: int = 1
    ratio_range: tuple[float, float] | None = None
    cpu_ratio_range: tuple[float, float] | None = None


@dataclass
class Run:
    settings: Settings
    servers: list[ServerSpec]
    results: list[Result] = field(default_factory=list)
    server_errors: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    load_before: list[float] = field(default_factory=lambda: list(os.getloadavg()))
    wall_seconds: float = 0.0

    def plan(self) -> list[tuple[str, int | None]]:
        """(workload, idle level) in the order they run."""
        s = self.settings
        return [(w, idle) for w in s.workloads
                for idle in (s.idle_levels if w == "scaling" else (None,))]

    def steps(self) -> int:
        """For the progress display: each server's start, then each phase of each round."""
        return len(self.servers) * (1 + len(self.plan()) * self.settings.rounds)

    def execute(self, progress: Callable[[str], None]) -> None:
        """Every workload on every server. `progress(label)` is called before each step.

        Every server starts first and idles while the others are measured; then each phase
        runs on each server in turn, so the figures a ratio compares are measured seconds
        apart, not minutes, on a machine whose load drifts."""
        began = time.monotonic()
        _raise_fd_limit()
        s = self.settings
        running: dict[str, ServerProcess] = {}
        failed: dict[str, str] = {}
        try:
            for spec in self.servers:
                progress(f"{spec.name}: starting")
                try:
                    running[spec.name] = ServerProcess.start(spec, s.host, 0, START_DEADLINE)
                except StartError as exc:
                    self.server_errors[spec.name] = f"did not start: {exc}"
                    failed[spec.name] = "the server did not start"
            with Generators(s.processes) as generators:
                for round_, (workload, idle) in ((r, p) for r in range(s.rounds)
                                                 for p in self.plan()):
                    for spec in self.servers:
                        label = workload if idle is None else f"{workload} +{idle} idle"
                        if s.rounds > 1:
                            label += f", round {round_ + 1}/{s.rounds}"
                        progress(f"{spec.name}: {label}")
                        if spec.name in failed:
                            self.results.append(Result(spec.name, workload, idle,
                                                       status="skipped",
                                                       error=failed[spec.name],
                                                       unit=UNITS[workload], round=round_))
                            continue
                        server = running[spec.name]
                        result = self._phase(server, generators, workload, idle)
                        result.round = round_
                        self.results.append(result)
                        if result.status == "error" and not server.alive():
                            failed[spec.name] = f"after an earlier failure: {result.error}"
        finally:
            for name, server in running.items():
                trouble = server.stop(STOP_DEADLINE)
                if trouble is not None:
                    self.server_errors.setdefault(name, f"at the end: {trouble}")
        self.wall_seconds = time.monotonic() - began
        self._ratios()

    def _phase(self, server: ServerProcess, generators: Generators, workload: str,
               idle: int | None) -> Result:
        s = self.settings
        result = Result(server.spec.name, workload, idle, unit=UNITS[workload])
        host, port = server.address
        if workload == "pingpong":
            total, size = s.connections, s.message_size
        elif workload == "stream":
            total, size = s.stream_connections, s.stream_size
        elif workload == "churn":
            total, size = s.churn_clients, s.message_size
        else:
            total, size = s.scaling_active, s.message_size
        idle_count = idle or 0
        limit = server.spec.fd_setsize
        if limit is not None and total > limit - FD_MARGIN:
            result.status = "skipped"
            result.error = (f"{total} connections: FD_SETSIZE={limit}, select() cannot watch "
                            f"a descriptor numbered that high (at most {limit - FD_MARGIN})")
            return result
        if limit is not None and idle_count + total > limit - FD_MARGIN:
            capped = max(0, limit - FD_MARGIN - total)
            result.note = (f"idle capped at {capped}: FD_SETSIZE={limit}, select() cannot "
                           "watch a descriptor numbered that high")
            idle_count = capped
        result.idle_open = idle_count if workload == "scaling" else None
        shares = _split(total, s.processes)
        kind = "pingpong" if workload == "scaling" else workload
        jobs = [Job(kind, host, port, n, size, s.stall, s.connect_deadline(n)) for n in shares]
        try:
            with _idle_connections(host, port, idle_count, s):
                outcomes, cpu = generators.run(jobs, s.warmup, s.duration,
                                               _measure(server))
        except LoadError as exc:
            result.status = "error"
            result.error = str(exc) if server.alive() else f"{exc}; {server.death()}"
            return result
        _fill(result, outcomes, cpu)
        return result

    def _ratios(self) -> None:
        base = {(r.round, r.workload, r.idle): r for r in self.results
                if r.server == "asyncio" and r.status == "ok" and r.rate > 0}
        for r in self.results:
            ref = base.get((r.round, r.workload, r.idle))
            if r.status != "ok" or ref is None:
                continue
            r.ratio_to_asyncio = r.rate / ref.rate
            if r.rate_per_server_cpu_s and ref.rate_per_server_cpu_s:
                r.cpu_ratio_to_asyncio = r.rate_per_server_cpu_s / ref.rate_per_server_cpu_s

    def summary(self) -> list[Result]:
        """One result per server, workload and idle level: with one round, the result; with
        several, each figure the median of its rounds (rates, CPU, latencies, ratios, each on
        its own), with the range of the ratios. A cell that failed in any round shows that
        failure: a server that stops echoing once is not rescued by a median."""
        cells: dict[tuple[str, str, int | None], list[Result]] = {}
        for r in self.results:
            cells.setdefault((r.server, r.workload, r.idle), []).append(r)
        out = []
        for group in cells.values():
            bad = [r for r in group if r.status != "ok"]
            if len(group) == 1 or bad:
                out.append(replace(bad[0] if bad else group[0], rounds=len(group)))
                continue
            medians = {name: _median([getattr(r, name) for r in group]) for name in _FIGURES}
            out.append(replace(group[0], **medians, rounds=len(group),
                               ratio_range=_range([r.ratio_to_asyncio for r in group]),
                               cpu_ratio_range=_range([r.cpu_ratio_to_asyncio
                                                       for r in group])))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "tool": "conformance.bench",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "wall_seconds": round(self.wall_seconds, 2),
            "machine": {**machine(),
                        "load_average_before": [round(x, 2) for x in self.load_before]},
            "settings": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in asdict(self.settings).items()},
            "servers": [{"name": sp.name, "baseline": sp.baseline,
                         "impl": None if sp.baseline else sp.impl or sp.name,
                         "workers": sp.workers, "fd_setsize": sp.fd_setsize,
                         "error": self.server_errors.get(sp.name)} for sp in self.servers],
            "results": [asdict(r) for r in self.results],
            "summary": [asdict(r) for r in self.summary()],
            "generator": self.generator_ceiling(),
        }

    def generator_ceiling(self) -> dict[str, Any]:
        """The generator's ping-pong ceiling -- echoes per generator CPU-second, its best
        phase -- against the servers that need the least CPU per echo, the fastest baseline
        and the fastest implementation. Headroom above 1: on equal CPU, the generator drives
        more echoes than that server can serve, so the server is what is measured."""
        pings = [r for r in self.results if r.workload == "pingpong" and r.status == "ok"
                 and r.rate_per_server_cpu_s]
        ceiling = max((r.count / r.generator_cpu_s for r in pings if r.generator_cpu_s > 0),
                      default=None)
        found: dict[str, Any] = {"processes": self.settings.processes,
                                 "pingpong_per_generator_cpu_s": ceiling}
        for key, group in (("baseline", [r for r in pings if r.server in _BASELINE_NAMES]),
                           ("impl", [r for r in pings if r.server not in _BASELINE_NAMES])):
            best = max(group, key=lambda r: r.rate_per_server_cpu_s or 0.0, default=None)
            per_cpu = best.rate_per_server_cpu_s if best else None
            found[f"fastest_{key}"] = best.server if best else None
            found[f"fastest_{key}_per_server_cpu_s"] = per_cpu
            found[f"headroom_over_fastest_{key}"] = ceiling / per_cpu if ceiling and per_cpu \
                else None
        return found


_BASELINE_NAMES = ("asyncio", "uvloop", "selectors")


# The figures of a Result that `Run.summary()` takes the median of, over the rounds.
_FIGURES = ("duration", "count", "rate", "p50_us", "p99_us", "server_cpu_s",
            "rate_per_server_cpu_s", "server_cpu_us_per_op", "generator_cpu_s",
            "generator_cores", "ratio_to_asyncio", "cpu_ratio_to_asyncio")


def _median(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _range(values: list[float | None]) -> tuple[float, float] | None:
    known = [v for v in values if v is not None]
    return (min(known), max(known)) if known else None


def _split(total: int, parts: int) -> list[int]:
    """`total` connections over at most `parts` workers, none with zero."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _measure(server: ServerProcess) -> Callable[[float, float], float]:
    """The server's CPU seconds over the window [start, end), read at both ends."""

    def during(start: float, end: float) -> float:
        wait = threading.Event().wait  # measuring over a window, not awaiting a condition
        wait(max(0.0, start - time.monotonic()))
        before = server.cpu_seconds()
        wait(max(0.0, end - time.monotonic()))
        return server.cpu_seconds() - before

    return during


@contextlib.contextmanager
def _idle_connections(host: str, port: int, count: int, s: Settings) -> Iterator[None]:
    socks = open_idle(host, port, count, s.connect_deadline(count), s.stall) if count else []
    try:
        yield
    finally:
        for sock in socks:
            sock.close()


def _fill(result: Result, outcomes: list[Outcome], server_cpu: float) -> None:
    window = max(o.window for o in outcomes)
    result.duration = window
    result.count = sum(o.count for o in outcomes)
    result.generator_cpu_s = sum(o.cpu for o in outcomes)
    result.generator_cores = result.generator_cpu_s / window if window else 0.0
    result.server_cpu_s = server_cpu
    amount = sum(o.nbytes for o in outcomes) / 1e6 if result.workload == "stream" \
        else float(result.count)
    result.rate = amount / window if window else 0.0
    if server_cpu > 0 and not math.isnan(server_cpu):
        result.rate_per_server_cpu_s = amount / server_cpu
        if result.count:
            result.server_cpu_us_per_op = server_cpu / result.count * 1e6
    latencies = sorted(ns for o in outcomes for ns in o.latencies_ns)
    if latencies:
        result.p50_us = latencies[len(latencies) // 2] / 1e3
        result.p99_us = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e3


def _raise_fd_limit() -> None:
    """A thousand idle connections plus the active ones: more than a default soft limit of
    1024 in this process and in the servers it starts (they inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "platform": platform.platform(),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
