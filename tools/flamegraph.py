"""A flame graph of the echo server under the benchmark's load, sampled by py-spy.

    python -m tools.flamegraph --impl=epoll --workload=pingpong [--workers 1] [--duration 10]
                               [--rate 100] [--out flame-results] [--threads] [--idle]
                               [--blocking] [--lines] [--connections N] [--processes 2]
    python -m tools.flamegraph --baseline=selectors --workload=pingpong    # the same, for a
                                           # benchmark baseline (asyncio, uvloop, selectors)

Starts `python -m impls.echo --impl=NAME --workers=N` in a process of its own, as the
benchmark does, drives it with the benchmark's own load generator (`conformance/bench/_load.py`,
the same workload, connections and message size as `python -m conformance.bench`), and records
it from outside with `py-spy record --pid` for `--duration` seconds of steady load. It writes
`flame-<impl>-<workload>.svg` (`-w<N>` added when workers is not 1), titled with the model,
the workload, the workers and the number of samples. A baseline's graph -- the bare
`selectors` loop makes the epoll model's syscalls and nothing else -- shows by difference what
a model's own code adds. Then it stops the load, stops the server
with SIGTERM (the echo server's clean stop) and stops py-spy; every step has a deadline.

Why py-spy rather than cProfile (`tools/profile_model.py`): it samples the running process
without touching it -- no profiler hook on each call, which slows a Python server by ~2x and
slows small functions most -- and a flame graph shows whole stacks, so a cost is seen where it
is paid (a `send()` under `on_recv` under the loop). cProfile gives exact call counts, which a
sampler cannot; the two answer different questions.

What the defaults choose, and why:

- idle threads (asleep in epoll_wait, recv, a lock) are not sampled unless `--idle`: a frame's
  width is its share of the samples in which a thread was running -- or runnable, waiting for
  a core: py-spy asks the OS, which does not tell the two apart. So the tool measures the
  server's CPU over the recording too, and says when its threads were runnable much longer
  than they ran: on a busy machine the widths show where the server was preempted (a send()
  that wakes a load generator may hand it the core) as much as where it worked;
- the server is not paused for each sample (py-spy `--nonblocking`; `--blocking` to pause).
  Pausing stops every thread with ptrace and reads all their stacks: with a thread per
  session that halves the blocking model's echo rate, and a thread resumed from a pause is
  briefly runnable, so py-spy counts idle threads (the accept loop, the main thread in
  sigwait) as busy -- 5-10% of the samples, measured. Unpaused, a stack is now and then read
  while it changes: py-spy drops the sample (an "unreadable round", counted in the output and
  the SVG's notes) or, in trio, whose tasks switch stacks all the time, keeps a torn stack
  (~20% of them: short towers beside the main one). For trio, `--blocking` gives whole stacks;
- one frame per function (py-spy `--nolineno`; `--lines` for one per line executing): a
  function split by line is a row of slivers, and a larger SVG;
- all threads merged (`--threads` for one tower per thread): the models' threads all run
  the same few functions.

A graph is 20-60 kB (10 s at 100 Hz: about a thousand samples), most of it py-spy's script
for zooming and searching; the sample count barely changes the size, the number of distinct
stacks does (trio's are many and deep).

py-spy reads another process's memory (ptrace): as root, or where the kernel allows it. When
it is missing or cannot attach, this says what to do and exits 3. Exit status: 0 with the SVG
written; 1 when the server or the load failed (the message says which); 2 for bad input; 3
when py-spy is missing or cannot read the server.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conformance._loading import ImplError, resolve
from conformance.bench._load import Generators, Job, LoadError
from conformance.bench._run import START_DEADLINE, STOP_DEADLINE, Settings, _split
from conformance.bench._servers import (
    BASELINES,
    ServerProcess,
    ServerSpec,
    StartError,
    baselines_available,
)

__all__ = ["main"]

WORKLOADS = ("pingpong", "churn")
# py-spy's attach check (`py-spy dump`): reading a few stacks, generous for a loaded machine.
ATTACH_DEADLINE = 30.0
# Past the sampling window, for py-spy to write its SVG and exit.
WRITE_DEADLINE = 30.0
# The load runs this much longer than py-spy samples: py-spy starts sampling a moment after it
# is launched (it finds the interpreter in the process's memory first), and its window must
# end while the load still runs -- after the load, the server closes every connection, and
# that is not the workload.
LOAD_TAIL = 1.0
EXIT_MISSING = 3
# A sample counts a thread the OS says is running *or runnable*: when the server's threads
# were runnable this many times more than the CPU they got, the machine was too busy for the
# widths to mean CPU, and the tool says so.
BUSY_MACHINE = 1.5
# Functions listed after the graph is written, by the samples that end in them.
TOP = 12

_INSTALL = ("install it with `python -m pip install py-spy` (or the bench extra: "
            "`python -m pip install -e '.[bench]'` in a checkout)")
_PTRACE = (
    "py-spy reads the server's memory with ptrace, which this user may not do here. Run this "
    "as root (`sudo -E env \"PATH=$PATH\" python -m tools.flamegraph ...`), or allow ptrace of "
    "your own processes (`sudo sysctl kernel.yama.ptrace_scope=0`); in a container, start it "
    "with `--cap-add=SYS_PTRACE`.")
_TITLE = re.compile(r'(<text id="title"[^>]*>)[^<]*(</text>)')
_TOTAL = re.compile(r'total_samples="(\d+)"')
_ERRORS = re.compile(r"Errors: (\d+)")
_NOTES = re.compile(r"(<!--NOTES: ).*?(-->)", re.DOTALL)
_FRAME = re.compile(r'<title>(.*?) \((\d[\d,]*) samples?, [^)]*\)</title><rect [^>]*?y="([\d.]+)"'
                    r'[^>]*?fg:x="(\d+)" fg:w="(\d+)"')


class ProfilerMissing(Exception):
    """py-spy is not installed, or cannot read the server process: what to do."""


class Failed(Exception):
    """The server or the load failed; the message says which."""


class Terminated(BaseException):
    """Ctrl-C or SIGTERM: the run unwinds, stopping the server, the load and py-spy."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """SIGINT and SIGTERM raise Terminated, except inside `held()`, where one waits for the
    end of it: a process being started is known before it has to be stopped. (Blocking the
    signals would not do: another thread may take them, and Python runs the handler in the
    main thread at its next instruction all the same.)"""

    STOP = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._holding = False
        self._pending: int | None = None

    def handler(self, signum: int, frame: object) -> None:
        if self._holding:
            self._pending = signum
        else:
            raise Terminated(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            if self._pending is not None:
                signum, self._pending = self._pending, None
                raise Terminated(signum)  # the signal wins over an error in the section


_signals = _Signals()


@dataclass(frozen=True)
class Options:
    impl: str
    baseline: bool
    workload: str
    workers: int
    duration: int
    rate: int
    out: Path
    connections: int
    processes: int
    threads: bool
    idle: bool
    blocking: bool
    lines: bool

    def svg(self) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.impl)
        workers = "" if self.baseline or self.workers == 1 else f"-w{self.workers}"
        return self.out / f"flame-{safe}-{self.workload}{workers}.svg"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m tools.flamegraph",
        description="A py-spy flame graph of `python -m impls.echo` under the benchmark's load.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--baseline", choices=BASELINES,
                       help="a baseline of the benchmark instead of an implementation")
    which.add_argument("--impl",
                       help="a built-in (blocking, select, epoll, iocp, trio), an entry point, "
                            "or package.module:factory")
    p.add_argument("--workload", choices=WORKLOADS, default="pingpong")
    p.add_argument("--workers", type=int, default=1,
                   help="ServerConfig.workers (default 1: on CPython a second loop only adds "
                        "hand-offs)")
    p.add_argument("--duration", type=int, default=10,
                   help="whole seconds sampled (py-spy's unit), after a warm-up")
    p.add_argument("--rate", type=int, default=100, help="samples per second (py-spy's default)")
    p.add_argument("--out", type=Path, default=Path("flame-results"))
    p.add_argument("--connections", type=int, default=None,
                   help=f"ping-pong connections (default {d.connections}), or churn clients "
                        f"open at once (default {d.churn_clients}), as the benchmark's")
    p.add_argument("--processes", type=int, default=d.processes,
                   help="load generator processes")
    p.add_argument("--threads", action="store_true",
                   help="one tower per thread (py-spy --threads) instead of all merged")
    p.add_argument("--idle", action="store_true",
                   help="sample idle threads too (py-spy --idle): waiting then counts as width")
    p.add_argument("--blocking", action="store_true",
                   help="pause the server for each sample (py-spy's default): exact stacks, "
                        "but a slower server, and idle threads that look busy")
    p.add_argument("--lines", action="store_true",
                   help="one frame per line executing, not per function (a larger SVG)")
    return p.parse_args(argv)


def _options(args: argparse.Namespace) -> Options:
    if args.connections is None:
        d = Settings()
        args.connections = d.connections if args.workload == "pingpong" else d.churn_clients
    for name in ("workers", "duration", "rate", "connections", "processes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if args.baseline is not None and args.baseline not in baselines_available():
        raise ValueError(f"--baseline={args.baseline}: it is not installed here")
    return Options(impl=args.impl or args.baseline, baseline=args.baseline is not None,
                   workload=args.workload, workers=args.workers,
                   duration=args.duration, rate=args.rate, out=args.out,
                   connections=args.connections, processes=args.processes,
                   threads=args.threads, idle=args.idle, blocking=args.blocking,
                   lines=args.lines)


def find_py_spy() -> str:
    """The py-spy executable: next to this Python (where pip puts it), else on PATH."""
    here = os.path.dirname(sys.executable)
    found = shutil.which("py-spy", path=os.pathsep.join([here, os.environ.get("PATH", "")]))
    if found is None:
        raise ProfilerMissing(f"py-spy is not installed: {_INSTALL}")
    return found


def _env() -> dict[str, str]:
    # py-spy's errors come with a Rust backtrace when RUST_BACKTRACE is set: noise here.
    return {**os.environ, "RUST_BACKTRACE": "0"}


def _said(output: str) -> str:
    """py-spy's own error, without its progress lines."""
    lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("py-spy> ")]
    return " ".join(lines)[:600] or "(it printed nothing)"


def check_attach(py_spy: str, pid: int) -> None:
    """`py-spy dump` once: it fails as `record` would (no ptrace, an unknown Python), but
    before any load runs, and in a second."""
    try:
        probe = subprocess.run([py_spy, "dump", "--pid", str(pid)], capture_output=True,
                               text=True, timeout=ATTACH_DEADLINE, env=_env())
    except subprocess.TimeoutExpired:
        raise ProfilerMissing(f"py-spy could not read the server (pid {pid}) within "
                              f"{ATTACH_DEADLINE:.0f} s") from None
    if probe.returncode == 0:
        return
    said = _said(probe.stdout + probe.stderr)
    if re.search(r"permission denied|operation not permitted|ptrace", said, re.IGNORECASE):
        raise ProfilerMissing(f"py-spy cannot attach to the server (pid {pid}): {said}\n"
                              f"{_PTRACE}")
    raise ProfilerMissing(f"py-spy cannot read the server (pid {pid}): {said}")


def _record_command(py_spy: str, o: Options, pid: int, svg: Path) -> list[str]:
    extra = [flag for flag, on in (("--threads", o.threads), ("--idle", o.idle),
                                   ("--nonblocking", not o.blocking),
                                   ("--nolineno", not o.lines)) if on]
    return [py_spy, "record", "--pid", str(pid), "--duration", str(o.duration),
            "--rate", str(o.rate), "--format", "flamegraph", "--output", str(svg), *extra]


class _Recorder:
    """py-spy over the load's window: started once the warm-up is over, waited for with a
    deadline, killed if it outlives it."""

    def __init__(self, command: list[str], duration: int, server: ServerProcess) -> None:
        self.command = command
        self.duration = duration
        self.server = server
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""
        self.cores = float("nan")  # the server's CPU seconds per second while py-spy ran

    def during(self, start: float, end: float) -> None:
        threading.Event().wait(max(0.0, start - time.monotonic()))  # the warm-up: a window
        began, cpu = time.monotonic(), self.server.cpu_seconds()
        # Ctrl-C or SIGTERM while Popen runs would unwind before `self.proc` is set, and
        # py-spy would outlive us: held until it is.
        with _signals.held():
            self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, env=_env())
        try:
            self.output, _ = self.proc.communicate(timeout=self.duration + WRITE_DEADLINE)
        except subprocess.TimeoutExpired:
            self.stop()
            raise Failed(f"py-spy did not finish within {self.duration + WRITE_DEADLINE:.0f} s "
                         f"of its {self.duration} s window (killed)") from None
        self.cores = (self.server.cpu_seconds() - cpu) / (time.monotonic() - began)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@dataclass(frozen=True)
class Recording:
    svg: Path
    samples: int
    unreadable: int  # sample rounds py-spy could not read (a stack changed as it was read)
    cores: float  # the server's CPU seconds per second over the recording
    rate: float  # echoes (churn: connections) per second, under sampling
    load: float  # the machine's 1-minute load average before the run

    def busy(self, o: Options) -> float:
        """Threads running or runnable, on average: what the samples measure."""
        return self.samples / (o.rate * o.duration)


def _describe(o: Options, r: Recording) -> tuple[str, str]:
    """A title short enough for a docs page, and the whole story for the SVG's notes."""
    what = "echoes" if o.workload == "pingpong" else "connections"
    conns = "connections" if o.workload == "pingpong" else "clients at once"
    workers = "baseline" if o.baseline else f"workers={o.workers}"
    title = (f"{o.impl}, {o.workload}, {workers}: {r.samples:,} samples, "
             f"server CPU {r.cores:.2f} cores")
    server = (f"the {o.impl} baseline" if o.baseline
              else f"python -m impls.echo --impl={o.impl} --workers={o.workers}")
    notes = (f"{server} under the benchmark's "
             f"{o.workload} load ({o.connections} {conns}, {o.processes} generator processes): "
             f"{r.rate:,.0f} {what}/s under sampling. py-spy {o.rate} Hz for {o.duration} s, "
             f"{'paused' if o.blocking else 'unpaused'}, idle threads "
             f"{'sampled' if o.idle else 'not sampled'}, threads "
             f"{'apart' if o.threads else 'merged'}: {r.samples:,} samples, {r.unreadable} "
             f"rounds unreadable. Threads running or runnable, on average: {r.busy(o):.2f}; "
             f"cores of CPU the server used: {r.cores:.2f}; load average {r.load:.1f} before.")
    return title, notes


def _annotate(r: Recording, o: Options) -> None:
    """Replace py-spy's title (its own command line, with this machine's paths) by what was
    measured, and write the rest into the SVG's notes."""
    text = r.svg.read_text()
    title, notes = _describe(o, r)
    text, titled = _TITLE.subn(lambda m: m.group(1) + html.escape(title, quote=False)
                               + m.group(2), text, count=1)
    text, noted = _NOTES.subn(lambda m: m.group(1) + notes.replace("--", "- -") + m.group(2),
                              text, count=1)
    if titled != 1 or noted != 1:
        raise Failed(f"{r.svg}: no title or notes in py-spy's SVG (a py-spy version this "
                     "does not know?)")
    r.svg.write_text(text)


def self_samples(svg_text: str) -> dict[str, int]:
    """Samples on which each function was the innermost Python frame (its own code, or a C
    call such as a socket's send() made from it), summed over every stack it appears in:
    a frame's width minus its callees' widths. The widest of these are where the time goes."""
    frames = [(html.unescape(name), float(y), int(x), int(w))
              for name, _, y, x, w in _FRAME.findall(svg_text)]
    below: dict[float, list[tuple[int, int]]] = {}
    for _, y, x, w in frames:
        below.setdefault(y, []).append((x, w))
    levels = sorted(below)
    # py-spy draws the root at the top (an icicle): a frame's callees are on the next row down.
    root_y = next((y for name, y, _, _ in frames if name == "all"), levels[0] if levels else 0)
    step = 1 if root_y == (levels[0] if levels else 0) else -1
    spent: dict[str, int] = {}
    for name, y, x, w in frames:
        i = levels.index(y) + step
        callees = below.get(levels[i], []) if 0 <= i < len(levels) else []
        own = w - sum(cw for cx, cw in callees if x <= cx < x + w)
        if own > 0 and name != "all":
            spent[name] = spent.get(name, 0) + own
    return spent


def run(o: Options, py_spy: str) -> Recording:
    """Start the server, check py-spy can read it, record it under load, stop everything.
    Whatever goes wrong, no graph is left behind: a stale one must not pass for this run's,
    and py-spy, interrupted, writes what it has (under its own title)."""
    svg = o.svg()
    svg.parent.mkdir(parents=True, exist_ok=True)
    svg.unlink(missing_ok=True)
    try:
        return _record(o, py_spy, svg)
    except BaseException:
        svg.unlink(missing_ok=True)
        raise


def _record(o: Options, py_spy: str, svg: Path) -> Recording:
    d = Settings()
    load = os.getloadavg()[0]
    spec = ServerSpec(o.impl, baseline=o.baseline, workers=None if o.baseline else o.workers)
    try:
        with _signals.held():  # started, it has to be known to be stopped (START_DEADLINE)
            server = ServerProcess.start(spec, d.host, 0, START_DEADLINE)
    except StartError as exc:
        raise Failed(f"the server did not start: {exc}") from None
    recorder = _Recorder(_record_command(py_spy, o, server.proc.pid, svg), o.duration, server)
    trouble: str | None = None
    try:
        check_attach(py_spy, server.proc.pid)
        host, port = server.address
        jobs = [Job(o.workload, host, port, n, d.message_size, d.stall,
                    d.connect_deadline(n)) for n in _split(o.connections, o.processes)]
        try:
            with Generators(len(jobs)) as generators:
                outcomes, _ = generators.run(jobs, d.warmup, o.duration + LOAD_TAIL,
                                             recorder.during)
        except LoadError as exc:
            why = "" if server.alive() else f"; {server.death()}"
            raise Failed(f"the load failed: {exc}{why}") from None
    finally:
        recorder.stop()
        trouble = server.stop(STOP_DEADLINE)
    if trouble is not None:
        raise Failed(f"the server did not stop cleanly: {trouble}")
    if recorder.proc is None or recorder.proc.returncode != 0 or not svg.exists():
        code = None if recorder.proc is None else recorder.proc.returncode
        raise Failed(f"py-spy wrote no flame graph (exit {code}): {_said(recorder.output)}")
    text = svg.read_text()
    total, errors = _TOTAL.search(text), _ERRORS.search(recorder.output)
    window = max((x.window for x in outcomes), default=0.0)
    recording = Recording(svg, int(total.group(1)) if total else 0,
                          int(errors.group(1)) if errors else 0, recorder.cores,
                          sum(x.count for x in outcomes) / window if window else 0.0, load)
    _annotate(recording, o)
    return recording


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        o = _options(args)
        if not o.baseline:
            resolve(o.impl)  # a bad name stops here, with the suite's message, before any run
    except (ImplError, ValueError) as exc:
        print(f"tools.flamegraph: {exc}", file=sys.stderr)
        return 2
    previous = {signum: signal.signal(signum, _signals.handler) for signum in _Signals.STOP}
    try:
        py_spy = find_py_spy()
        r = run(o, py_spy)
    except ProfilerMissing as exc:
        print(f"tools.flamegraph: {exc}", file=sys.stderr)
        return EXIT_MISSING
    except Failed as exc:
        print(f"tools.flamegraph: {o.impl}: {exc}", file=sys.stderr)
        return 1
    except Terminated as exc:
        print(f"tools.flamegraph: {signal.Signals(exc.signum).name}: the server, the load and "
              "py-spy were stopped", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    size = math.ceil(r.svg.stat().st_size / 1024)
    print(f"tools.flamegraph: {r.svg} ({size} kB): {_describe(o, r)[1]}")
    if r.busy(o) > BUSY_MACHINE * r.cores:
        print(f"tools.flamegraph: note: the server's threads were runnable {r.busy(o):.2f} of "
              f"the time but ran on {r.cores:.2f} cores: they waited for a core "
              f"{1 - r.cores / r.busy(o):.0%} of the time they were runnable, and the widths "
              "show where they were preempted as much as where they worked. On a quiet "
              "machine the two agree.")
    spent = sorted(self_samples(r.svg.read_text()).items(), key=lambda kv: -kv[1])
    print("Where the samples end (innermost Python frame, C calls included):")
    for name, own in spent[:TOP]:
        print(f"  {own / max(r.samples, 1):6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
