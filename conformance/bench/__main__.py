"""python -m conformance.bench --impl=NAME[,NAME...]|all [--workloads=...] [--quick]

Runs the echo server (`python -m impls.echo`) on each named implementation, and the
baselines (asyncio, uvloop when installed, a bare selectors loop), under the same load, and
prints a table per workload with every figure as a ratio to asyncio in the same run. Writes
bench.json (every figure and the machine), bench.md (the tables) and, with matplotlib, the
plots, into --out. docs/performance.md explains each workload and each column.

Exit status: 0 when every phase was measured (or skipped past FD_SETSIZE); 1 when a server
failed (the tables and the JSON say where and why); 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance._loading import ImplError, parse_impl_option, resolve

from ._output import progress, render, write_json, write_markdown, write_plots
from ._run import WORKLOADS, Run, Settings
from ._servers import ServerSpec, baselines_available

# --quick: every workload, a third of the window, two idle levels: a smoke run, not figures.
# An option given explicitly wins over these.
QUICK = {"duration": 0.3, "warmup": 0.1, "idle": "0,100", "connections": 50}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m conformance.bench",
        description="Echo-server load benchmark of I/O-model implementations against "
                    "asyncio, in the same run.")
    p.add_argument("--impl", default="all",
                   help="comma-separated implementations (built-in names, entry points, "
                        "package.module:factory) or 'all' for the five built-ins")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"any of {', '.join(WORKLOADS)} (default: all)")
    p.add_argument("--connections", type=int, default=None,
                   help=f"ping-pong (default {d.connections})")
    p.add_argument("--message-size", type=int, default=d.message_size,
                   help="bytes per ping-pong, churn and scaling message")
    p.add_argument("--stream-connections", type=int, default=d.stream_connections)
    p.add_argument("--stream-size", type=int, default=d.stream_size)
    p.add_argument("--churn-clients", type=int, default=d.churn_clients,
                   help="churn connections open at once")
    p.add_argument("--scaling-active", type=int, default=d.scaling_active)
    p.add_argument("--idle", default=None,
                   help="idle-connection levels of the scaling workload (default "
                        f"{','.join(map(str, d.idle_levels))})")
    p.add_argument("--duration", type=float, default=None,
                   help=f"seconds measured per phase (default {d.duration})")
    p.add_argument("--warmup", type=float, default=None,
                   help=f"seconds of load before each window (default {d.warmup})")
    p.add_argument("--stall", type=float, default=d.stall,
                   help="seconds a connection may wait with no progress before the server "
                        "counts as stopped")
    p.add_argument("--processes", type=int, default=d.processes,
                   help="load generator processes")
    p.add_argument("--workers", default=",".join(map(str, d.workers)),
                   help="ServerConfig.workers for the implementations; a list (1,2) "
                        "measures each implementation once per value (default "
                        f"{','.join(map(str, d.workers))}: see docs/performance.md)")
    p.add_argument("--rounds", type=int, default=d.rounds,
                   help="measure every phase this many times, round after round, and show "
                        "the median and the range of the ratios (default 1; one run moves by "
                        "tens of per cent on a shared machine)")
    p.add_argument("--host", default=d.host)
    p.add_argument("--out", type=Path, default=Path("bench-results"),
                   help="directory for bench.json and the plots")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="short windows and two idle levels (a smoke run, under 30 s for "
                        "one implementation)")
    return p.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    d = Settings()
    defaults = {"connections": d.connections, "duration": d.duration, "warmup": d.warmup,
                "idle": ",".join(map(str, d.idle_levels))}
    for key, value in (QUICK if args.quick else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown or not workloads:
        raise ValueError(f"--workloads: {', '.join(unknown) or 'none given'}: the workloads "
                         f"are {', '.join(WORKLOADS)}")
    try:
        idle = tuple(int(x) for x in args.idle.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--idle={args.idle!r}: give numbers, e.g. 0,100,500,1000") from None
    try:
        workers = tuple(dict.fromkeys(int(x) for x in args.workers.split(",") if x.strip()))
    except ValueError:
        raise ValueError(f"--workers={args.workers!r}: give numbers, e.g. 1 or 1,2") from None
    counts = [args.connections, args.message_size, args.stream_connections,
              args.stream_size, args.churn_clients, args.scaling_active, args.processes,
              args.rounds, *workers]
    if min(counts) < 1 or args.duration <= 0 or args.stall <= 0 or min(idle, default=0) < 0:
        raise ValueError("sizes, counts, --workers, --duration and --stall must be positive")
    if not workers:
        raise ValueError("--workers: give at least one number, e.g. 1")
    settings = Settings(
        connections=args.connections, message_size=args.message_size,
        stream_connections=args.stream_connections, stream_size=args.stream_size,
        churn_clients=args.churn_clients, scaling_active=args.scaling_active,
        idle_levels=idle or (0,), duration=args.duration, warmup=args.warmup,
        stall=args.stall, processes=args.processes, host=args.host,
        workers=workers, workloads=workloads, rounds=args.rounds)
    return settings


def _servers(impl_option: str, workers: tuple[int, ...]) -> list[ServerSpec]:
    """Baselines first, then each implementation (once per --workers value, each next to the
    others), resolved here so a bad name stops the run before anything starts."""
    specs = [ServerSpec(name, baseline=True) for name in baselines_available()]
    for name in parse_impl_option(impl_option):
        impl = resolve(name)
        module = sys.modules.get(getattr(impl.factory, "__module__", ""), None)
        # A model whose module declares FD_SETSIZE cannot watch descriptors from there on.
        limit = getattr(module, "FD_SETSIZE", None)
        for n in workers:
            specs.append(ServerSpec(name if len(workers) == 1 else f"{name} w{n}",
                                    baseline=False, impl=name, workers=n,
                                    fd_setsize=limit if isinstance(limit, int) else None))
    return specs


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        settings = _settings(args)
        servers = _servers(args.impl, settings.workers)
    except (ImplError, ValueError) as exc:
        print(f"conformance.bench: {exc}", file=sys.stderr)
        return 2
    run = Run(settings, servers)
    try:
        with progress(run.steps()) as advance:
            run.execute(advance)
    except KeyboardInterrupt:
        print("conformance.bench: interrupted; every server was stopped", file=sys.stderr)
        return 130
    render(run)
    json_path = args.out / "bench.json"
    write_json(run, json_path)
    write_markdown(run, args.out / "bench.md")
    print(f"Every figure: {json_path} (the tables in Markdown: {args.out / 'bench.md'})")
    if not args.no_plots:
        plots = write_plots(run, args.out)
        print(plots if isinstance(plots, str) else
              "Plots: " + ", ".join(str(p) for p in plots))
    failed = run.server_errors or any(r.status == "error" for r in run.results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
