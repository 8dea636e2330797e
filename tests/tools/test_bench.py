"""`python -m conformance.bench`: a smoke run, the JSON's shape, and bad input that ends with
a message rather than a hang. Never a timed assertion: speed is reported, not tested.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from conformance.bench import _output
from conformance.bench._run import Run

# Deadlines against a hang, generous for a loaded 2-core machine; not the expected times
# (--quick takes ~15 s on a quiet machine).
RUN_DEADLINE = 300.0


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance.bench", "--no-plots", *args],
                          capture_output=True, text=True, timeout=RUN_DEADLINE)


def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    run = _bench("--impl=epoll", "--quick", f"--out={tmp_path}")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["schema"] == 1
    assert {"platform", "python", "cpus", "load_average"} <= set(report["machine"])
    servers = [s["name"] for s in report["servers"]]
    assert servers[0] == "asyncio" and "selectors" in servers and servers[-1] == "epoll"
    assert all(s["error"] is None for s in report["servers"])
    assert report["servers"][-1]["workers"] == 1 and report["settings"]["workers"] == [1]
    levels = report["settings"]["idle_levels"]
    for name in servers:
        mine = [r for r in report["results"] if r["server"] == name]
        assert sorted({r["workload"] for r in mine}) == ["churn", "pingpong", "scaling",
                                                         "stream"], mine
        assert sorted(r["idle"] for r in mine if r["workload"] == "scaling") == levels
        for r in mine:
            assert r["status"] == "ok", r
            assert r["count"] > 0 and r["rate"] > 0 and r["duration"] > 0, r
            assert r["server_cpu_s"] >= 0 and r["generator_cpu_s"] >= 0, r
            assert r["ratio_to_asyncio"] is not None, r
        pingpong = next(r for r in mine if r["workload"] == "pingpong")
        assert 0 < pingpong["p50_us"] <= pingpong["p99_us"], pingpong
    assert report["generator"]["processes"] >= 1
    assert report["generator"]["fastest_baseline"] in servers
    assert "Ping-pong" in run.stdout and "x asyncio" in run.stdout


def test_without_matplotlib_the_run_says_how_to_get_plots_outside_a_checkout(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The hint must work from a user's project too, where `-e '.[bench]'` names their own."""
    monkeypatch.setattr(_output, "_has", lambda name: name != "matplotlib")
    why = _output.write_plots(cast(Run, None), tmp_path)
    assert isinstance(why, str) and "path/to/io-conformance[bench]" in why, why
    assert not list(tmp_path.iterdir())


def test_unknown_implementation_is_a_usage_error() -> None:
    run = _bench("--impl=no_such_model", "--quick")
    assert run.returncode == 2
    assert "no implementation is called 'no_such_model'" in run.stderr


def test_rounds_measure_each_phase_again_and_the_tables_show_the_median(
        tmp_path: Path) -> None:
    """--rounds=3: every phase three times, each round's ratios to that round's asyncio; the
    summary holds one result per cell, each figure the median of its rounds, with the range
    of the ratios."""
    run = _bench("--impl=select", "--quick", "--workloads=pingpong", "--rounds=3",
                 f"--out={tmp_path}")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["settings"]["rounds"] == 3
    mine = [r for r in report["results"] if r["server"] == "select"]
    assert sorted(r["round"] for r in mine) == [0, 1, 2]
    assert all(r["ratio_to_asyncio"] is not None for r in mine), mine
    (cell,) = [r for r in report["summary"] if r["server"] == "select"]
    ratios = sorted(r["ratio_to_asyncio"] for r in mine)
    assert cell["rounds"] == 3 and cell["ratio_to_asyncio"] == ratios[1], (cell, ratios)
    assert cell["ratio_range"] == [ratios[0], ratios[2]]
    assert cell["rate"] == sorted(r["rate"] for r in mine)[1]
    assert "median of 3 rounds" in run.stdout


def test_a_workers_list_measures_each_implementation_once_per_value() -> None:
    """`--workers=1,2` is two rows per implementation, each named for its value, each started
    with its own --workers; the baselines have no workers."""
    from conformance.bench.__main__ import _servers
    specs = _servers("epoll", (1, 2))
    assert [s.name for s in specs if not s.baseline] == ["epoll w1", "epoll w2"]
    assert [s.command("127.0.0.1", 0)[-1] for s in specs if not s.baseline] == [
        "--workers=1", "--workers=2"]
    assert all("--workers" not in " ".join(s.command("127.0.0.1", 0))
               for s in specs if s.baseline)
    assert [s.name for s in _servers("epoll", (1,)) if not s.baseline] == ["epoll"]


@pytest.mark.parametrize("workers", ["0", "one", ","])
def test_bad_workers_is_a_usage_error(workers: str) -> None:
    run = _bench("--impl=epoll", f"--workers={workers}", "--quick")
    assert run.returncode == 2 and "--workers" in run.stderr, run.stderr


def test_bad_servers_end_with_a_message_and_fd_setsize_is_respected(tmp_path: Path) -> None:
    """One run, three servers: one stops echoing, one kills its process, and one declares an
    FD_SETSIZE of 60 (32 of them its own): 50 ping-pong connections do not fit, so that phase
    is skipped with the reason; 10 active plus 40 idle are capped at 18 idle."""
    broken = "tests.tools._broken"
    small = "tests.tools._small_fdset:make_server"
    run = _bench(f"--impl={broken}:stops_echoing,{broken}:crashes,{small}",
                 "--workloads=pingpong,scaling", "--idle=0,40", "--quick", "--stall=1",
                 f"--out={tmp_path}")
    assert run.returncode == 1, run.stdout + run.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    results = {(r["server"], r["workload"], r["idle"]): r for r in report["results"]}
    assert results[("asyncio", "pingpong", None)]["status"] == "ok"
    stalled = results[(f"{broken}:stops_echoing", "pingpong", None)]
    assert stalled["status"] == "error" and "stopped echoing" in stalled["error"], stalled
    crashed = results[(f"{broken}:crashes", "pingpong", None)]
    assert crashed["status"] == "error" and "exited with 3" in crashed["error"], crashed
    assert "stopped echoing" in run.stdout and "exited with 3" in run.stdout
    too_many = results[(small, "pingpong", None)]
    assert too_many["status"] == "skipped" and "FD_SETSIZE=60" in too_many["error"], too_many
    fits = results[(small, "scaling", 0)]
    assert fits["status"] == "ok" and fits["note"] is None, fits
    capped = results[(small, "scaling", 40)]
    assert capped["status"] == "ok" and capped["idle_open"] == 18, capped
    assert "idle capped at 18: FD_SETSIZE=60" in capped["note"]
    assert "FD_SETSIZE=60" in run.stdout
