"""Where a model's CPU goes under load: cProfile in every thread the server starts.

    python -m tools.profile_model --impl=epoll [--workload pingpong|churn] [--seconds 4]
                                  [--connections 100] [--workers N] [--top 15]
                                  [--no-profile | --by-file]

(churn: --connections is the number of connections open at once, as the benchmark's 8.)
`--no-profile` runs the same load unprofiled and prints only the server's CPU per echo (or
connection), user and system, over the measured window, from getrusage: for before/after
comparisons that the benchmark's 10 ms CPU ticks would blur.

cProfile hooks only the thread that enables it, and the models run their loops, workers and
session threads in threads of their own; so each thread gets its own profiler (timed by
`time.thread_time`: CPU the thread used, not wall time, which on a shared machine is mostly
waiting for a core) and the stats are merged. The server runs in this process with the echo
application of `python -m impls.echo`; the load is the benchmark's ping-pong generator
(`conformance/bench/_load.py`) in processes of its own. Profiling slows the server by
about 2x; read the shares, not the rates. docs/performance.md has the last profile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import threading
import time

from conformance._loading import resolve
from conformance.bench._load import Generators, Job
from impls.echo import EchoApp

_profiles: list[cProfile.Profile] = []
_original_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile(time.thread_time)
    _profiles.append(profile)
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()


def _cpu_over_window(start: float, end: float) -> tuple[float, float]:
    """This process's user and system CPU (the server's threads; the load runs in other
    processes) between `start` and `end` on the monotonic clock."""
    threading.Event().wait(max(0.0, start - time.monotonic()))
    before = resource.getrusage(resource.RUSAGE_SELF)
    threading.Event().wait(max(0.0, end - time.monotonic()))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.profile_model")
    parser.add_argument("--impl", default="epoll")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workload", choices=["pingpong", "churn"], default="pingpong")
    parser.add_argument("--connections", type=int, default=None,
                        help="default 100 for pingpong, 8 for churn")
    parser.add_argument("--workers", type=int, default=None,
                        help="ServerConfig.workers (default: the config's own)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-profile", action="store_true",
                        help="no cProfile: the server's CPU per echo over the window only")
    parser.add_argument("--by-file", action="store_true",
                        help="also the CPU per source file (built-ins: the C calls, syscalls)")
    args = parser.parse_args()
    if not args.no_profile:
        threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    impl = resolve(args.impl)
    app = EchoApp()
    config = impl.config() if args.workers is None else impl.config(workers=args.workers)
    server = app.server = impl.build(config)
    host, port = server.start(app)
    connections = args.connections or (100 if args.workload == "pingpong" else 8)
    half = connections // 2
    jobs = [Job(args.workload, host, port, n, 64, 5.0, 30.0)
            for n in (half, connections - half) if n]
    try:
        with Generators(len(jobs)) as generators:
            outcomes, (user, system) = generators.run(jobs, 0.25, args.seconds,
                                                      _cpu_over_window)
    finally:
        server.stop()
    echoes = sum(o.count for o in outcomes)
    unit, units = ("echo", "echoes") if args.workload == "pingpong" else ("connection",
                                                                          "connections")
    if args.no_profile:
        per = 1e6 / max(echoes, 1)
        print(f"{args.impl}: {echoes} {units} in {args.seconds} s; {user + system:.3f} s of "
              f"server CPU: {(user + system) * per:.1f} us per {unit} (user {user * per:.1f}, "
              f"system {system * per:.1f}), unprofiled")
        return
    stats = pstats.Stats(_profiles[0])
    for profile in _profiles[1:]:
        stats.add(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{args.impl}: {echoes} {units} in {args.seconds} s; {total:.2f} s of server CPU "
          f"in its threads ({total / max(echoes, 1) * 1e6:.0f} us per {unit}, profiled)")
    if args.by_file:
        _print_by_file(stats, total, max(echoes, 1), unit)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


def _print_by_file(stats: pstats.Stats, total: float, count: int, unit: str) -> None:
    """Own time (tottime) summed per file: which layer the CPU goes to."""
    by_file: dict[str, float] = {}
    for (path, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        where = f"built-in: {name.split(' of ')[0].strip('{<>}')}" if path == "~" else path
        by_file[where] = by_file.get(where, 0.0) + row[2]
    for where, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[:15]:
        print(f"{seconds / total:6.1%} {seconds / count * 1e6:7.1f} us per {unit}  {where}")
    print()


if __name__ == "__main__":
    main()
