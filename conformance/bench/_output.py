"""What a run shows: a progress display while it runs, then tables, a JSON file and plots.

rich draws the progress bar and the tables, matplotlib the plots; both come with the `bench`
extra (`pip install 'path/to/io-conformance[bench]'`; in a checkout, `pip install -e '.[bench]'`).
Without rich the same figures print as plain text, and without matplotlib the run says which
plots it did not draw: the JSON file always has every figure.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._run import Result, Run

__all__ = ["progress", "render", "write_json", "write_markdown", "write_plots"]

_WORKLOAD_TITLES = {
    "pingpong": "Ping-pong: {connections} connections, {message_size}-byte messages one at a "
                "time",
    "stream": "Stream: {stream_connections} connections, {stream_size}-byte messages",
    "churn": "Churn: connect, one {message_size}-byte echo, close ({churn_clients} at once)",
    "scaling": "Scaling: {scaling_active} active ping-pong connections plus idle ones; "
               "server CPU per message (msg/s)",
}


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # e.g. blocked with sys.modules[module] = None
        return False


@contextmanager
def progress(total: int) -> Iterator[Callable[[str], None]]:
    """A callable that advances the display by one phase and names the next one."""
    if _has("rich"):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("starting", total=total)
            first = True

            def advance(label: str) -> None:
                nonlocal first
                bar.update(task, description=label, advance=0 if first else 1)
                first = False

            yield advance
            bar.update(task, completed=total)
        return
    done = 0

    def plain(label: str) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{total}] {label}", file=sys.stderr, flush=True)

    yield plain


# ---- tables


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _ratio(x: float | None, spread: tuple[float, float] | None = None) -> str:
    if x is None:
        return "-"
    if spread is None or spread[0] == spread[1]:
        return f"{x:.2f}x"
    return f"{x:.2f}x ({spread[0]:.2f}-{spread[1]:.2f})"


def _tables(run: Run) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, headers, rows, footnotes) per workload."""
    s = run.settings
    out = []
    names = [sp.name for sp in run.servers]
    summary = run.summary()
    for workload in s.workloads:
        rows: list[list[str]] = []
        notes: list[str] = []
        results = [r for r in summary if r.workload == workload]
        title = _WORKLOAD_TITLES[workload].format(**vars(s))
        if s.rounds > 1:
            title += f" -- each figure the median of {s.rounds} rounds (the ratios' range)"
        if workload == "scaling":
            headers = ["server", *[f"+{idle} idle" for idle in s.idle_levels]]
            for name in names:
                row = [name]
                for idle in s.idle_levels:
                    r = next((r for r in results if r.server == name and r.idle == idle), None)
                    row.append(_scaling_cell(r, notes))
                rows.append(row)
        else:
            unit = results[0].unit if results else ""
            per = "MB" if workload == "stream" else unit.split("/")[0]
            headers = ["server", unit, "x asyncio", f"{per}/srv CPU-s", "x asyncio (CPU)"]
            if workload == "pingpong":
                headers += ["p50 us", "p99 us"]
            headers += ["srv CPU s", "gen CPU s"]
            digits = 1 if workload == "stream" else 0
            for name in names:
                r = next((r for r in results if r.server == name), None)
                if r is None:
                    continue
                if r.status != "ok":
                    notes.append(f"{name}: {r.status}: {r.error}")
                    rows.append([name, r.status] + ["-"] * (len(headers) - 2))
                    continue
                row = [name, _fmt(r.rate, digits), _ratio(r.ratio_to_asyncio, r.ratio_range),
                       _fmt(r.rate_per_server_cpu_s, digits),
                       _ratio(r.cpu_ratio_to_asyncio, r.cpu_ratio_range)]
                if workload == "pingpong":
                    row += [_fmt(r.p50_us), _fmt(r.p99_us)]
                row += [f"{r.server_cpu_s:.2f}", f"{r.generator_cpu_s:.2f}"]
                rows.append(row)
        out.append((title, headers, rows, notes))
    return out


def _scaling_cell(r: Result | None, notes: list[str]) -> str:
    if r is None:
        return "-"
    if r.status != "ok":
        if r.status == "error":
            notes.append(f"{r.server} +{r.idle} idle: {r.error}")
        return r.status
    mark = ""
    if r.note:
        mark = "*"
        note = f"* {r.server}: {r.note}"
        if note not in notes:
            notes.append(note)
    return f"{_fmt(r.server_cpu_us_per_op)} us{mark} ({_fmt(r.rate)}/s)"


def render(run: Run) -> None:
    """The tables on stdout, then the generator's ceiling and the machine."""
    lines_after = _summary(run)
    if _has("rich"):
        from rich.console import Console
        from rich.table import Table

        # Not a terminal (a file, CI): wide enough for every column rather than 80.
        console = Console(width=None if sys.stdout.isatty() else 130)
        for title, headers, rows, notes in _tables(run):
            table = Table(title=title, title_justify="left")
            for i, h in enumerate(headers):
                table.add_column(h, justify="left" if i == 0 else "right")
            for row in rows:
                table.add_row(*row)
            console.print(table)
            for note in notes:
                console.print(f"  {note}", highlight=False, soft_wrap=True)
        for line in lines_after:
            console.print(line, highlight=False, soft_wrap=True)
        return
    for title, headers, rows, notes in _tables(run):
        widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
        print(f"\n{title}")
        for row in [headers, *rows]:
            print("  ".join(c.rjust(w) if i else c.ljust(w)
                            for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        for note in notes:
            print(f"  {note}")
    for line in lines_after:
        print(line)


_LEGEND = ("Columns: the rate over the measured window and its ratio to asyncio in this run; "
           "the same per server CPU-second (steadier on a shared machine) and its ratio; "
           "CPU seconds the server process and the load generator used in the window "
           "(/proc counts 10 ms ticks: a server CPU under 0.1 s is good to 10% at best).")


def _summary(run: Run) -> list[str]:
    lines = [_LEGEND]
    g = run.generator_ceiling()
    if g["pingpong_per_generator_cpu_s"]:
        parts = [f"the most efficient {what} ({g[f'fastest_{key}']}) serves "
                 f"{g[f'fastest_{key}_per_server_cpu_s']:,.0f} per server CPU-second: headroom "
                 f"{g[f'headroom_over_fastest_{key}']:.2f}x"
                 for key, what in (("baseline", "baseline"), ("impl", "implementation"))
                 if g[f"fastest_{key}"]]
        lines.append(
            f"Load generator ({g['processes']} processes): up to "
            f"{g['pingpong_per_generator_cpu_s']:,.0f} ping-pong echoes per generator "
            f"CPU-second; {'; '.join(parts)}. Above 1x the server is what is measured; "
            "below, that server's rate is partly the generator's (a lower bound).")
    for name, error in run.server_errors.items():
        lines.append(f"{name}: {error}")
    m = run.to_json()["machine"]
    lines.append(
        f"Machine: {m['cpu_model'] or 'unknown CPU'}, {m['cpus_usable']} usable CPUs, "
        f"{m['python']}, load average {m['load_average_before'][0]:.1f} before and "
        f"{m['load_average'][0]:.1f} after; {run.wall_seconds:.0f} s in all. Compare figures "
        "within one run: between runs on a shared machine they spread widely.")
    return lines


# ---- files


def write_json(run: Run, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.to_json(), indent=2) + "\n")


def write_markdown(run: Run, path: Path) -> None:
    """The tables and the summary as Markdown, for docs/performance.md."""
    out: list[str] = []
    for title, headers, rows, notes in _tables(run):
        out += [f"**{title}**", "", "| " + " | ".join(headers) + " |",
                "|" + "|".join(["---"] + ["--:"] * (len(headers) - 1)) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out += [""] + [f"{note}  " for note in notes] + ([""] if notes else [])
    out += [line + "\n" for line in _summary(run)[1:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))


def write_plots(run: Run, directory: Path, formats: tuple[str, ...] = ("png", "svg")
                ) -> list[Path] | str:
    """throughput.{png,svg} and idle-cost.{png,svg}; or why none were drawn."""
    if not _has("matplotlib"):
        return ("no plots: matplotlib is not installed (the bench extra: pip install "
                "'path/to/io-conformance[bench]', or -e '.[bench]' in a checkout)")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names = [sp.name for sp in run.servers]
    baseline = {sp.name for sp in run.servers if sp.baseline}
    summary = run.summary()
    bars = [w for w in run.settings.workloads if w != "scaling"]
    if bars:
        # Two rows: the rate, and the rate per server CPU-second (steadier on a shared machine).
        fig, axes = plt.subplots(2, len(bars), figsize=(4.2 * len(bars), 7.0), squeeze=False)
        for column, workload in enumerate(bars):
            got = {r.server: r for r in summary
                   if r.workload == workload and r.status == "ok"}
            shown = [n for n in names if n in got]
            colours = ["0.6" if n in baseline else "tab:blue" for n in shown]
            unit = next(iter(got.values())).unit if got else ""
            per = "MB" if workload == "stream" else unit.split("/")[0]
            rows = [(unit, [got[n].rate for n in shown],
                     [got[n].ratio_to_asyncio for n in shown]),
                    (f"{per} per server CPU-second",
                     [got[n].rate_per_server_cpu_s or 0.0 for n in shown],
                     [got[n].cpu_ratio_to_asyncio for n in shown])]
            for row, (label, values, ratios) in enumerate(rows):
                ax = axes[row][column]
                ax.bar(shown, values, color=colours)
                for i, x in enumerate(ratios):
                    if x is not None:
                        ax.annotate(f"{x:.2f}x", (i, values[i]), ha="center", va="bottom",
                                    fontsize=8)
                ax.set_title(f"{workload}: {label}", fontsize=10)
                ax.tick_params(axis="x", labelrotation=45)
        fig.suptitle("Throughput per model (grey: baselines; labels: ratio to asyncio)")
        fig.tight_layout()
        written += _save(fig, directory / "throughput", formats)
        plt.close(fig)
    if "scaling" in run.settings.workloads:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for n in names:
            points = sorted((r.idle_open or 0, r.server_cpu_us_per_op) for r in summary
                            if r.server == n and r.workload == "scaling" and r.status == "ok"
                            and r.server_cpu_us_per_op is not None)
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=n,
                        linestyle="--" if n in baseline else "-")
        ax.set_xlabel("idle connections")
        ax.set_ylabel("server CPU per message (us)")
        ax.set_title(f"Cost against idle connections ({run.settings.scaling_active} active)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written += _save(fig, directory / "idle-cost", formats)
        plt.close(fig)
    return written


def _save(fig: Any, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    paths = [stem.with_suffix(f".{fmt}") for fmt in formats]
    for path in paths:
        fig.savefig(path, dpi=110)
    return paths
