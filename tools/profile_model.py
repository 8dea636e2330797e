"""Where a model's CPU goes under load: cProfile in every thread the server starts.

    python -m tools.profile_model --impl=epoll [--workload pingpong|churn] [--seconds 4]
                                  [--connections 100] [--top 15] [--cpu-only]

(churn: --connections is the number of connections open at once, as the benchmark's 8.)

cProfile hooks only the thread that enables it, and the models run their loops, workers and
session threads in threads of their own; so each thread gets its own profiler (timed by
`time.thread_time`: CPU the thread used, not wall time, which on a shared machine is mostly
waiting for a core) and the stats are merged. The server runs in this process with the echo
application of `python -m impls.echo`; the load is the benchmark's ping-pong generator
(`conformance/bench/_load.py`) in processes of its own. Profiling slows the server by
about 2x; read the shares, not the rates. `--cpu-only` leaves cProfile out and prints the
server's CPU per echo or connection over the measured window, unprofiled (this process's CPU:
the server's threads, the main thread only waits): the figure to compare before and after a
change, steadier on shared cores than a rate. docs/performance.md has the last profile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
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


def _window_cpu(start: float, end: float) -> float:
    """This process's CPU seconds from `start` to `end` (time.monotonic())."""
    threading.Event().wait(max(0.0, start - time.monotonic()))
    before = time.process_time()
    threading.Event().wait(max(0.0, end - time.monotonic()))
    return time.process_time() - before


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.profile_model")
    parser.add_argument("--impl", default="epoll")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workload", choices=["pingpong", "churn"], default="pingpong")
    parser.add_argument("--connections", type=int, default=None,
                        help="default 100 for pingpong, 8 for churn")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--cpu-only", action="store_true",
                        help="no cProfile: the server's CPU per echo or connection")
    args = parser.parse_args()
    if not args.cpu_only:
        threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    impl = resolve(args.impl)
    app = EchoApp()
    server = app.server = impl.build(impl.config())
    host, port = server.start(app)
    connections = args.connections or (100 if args.workload == "pingpong" else 8)
    half = connections // 2
    jobs = [Job(args.workload, host, port, n, 64, 5.0, 30.0)
            for n in (half, connections - half) if n]
    try:
        with Generators(len(jobs)) as generators:
            outcomes, cpu = generators.run(jobs, 0.25, args.seconds, _window_cpu)
    finally:
        server.stop()
    echoes = sum(o.count for o in outcomes)
    unit = "echo" if args.workload == "pingpong" else "connection"
    if args.cpu_only:
        print(f"{args.impl}: {echoes} {unit}s in {args.seconds} s; {cpu:.2f} s of server CPU "
              f"({cpu / max(echoes, 1) * 1e6:.0f} us per {unit}, unprofiled)")
        return
    stats = pstats.Stats(_profiles[0])
    for profile in _profiles[1:]:
        stats.add(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{args.impl}: {echoes} {unit}s in {args.seconds} s; {total:.2f} s of server CPU "
          f"in its threads ({total / max(echoes, 1) * 1e6:.0f} us per {unit}, profiled)")
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
