"""A second measure: a sampled run of a real mutation tool over the reference implementations.

The mutant gallery (`tests/mutants/`) holds the classic bugs the course notes warn about, each
written by hand. This command asks a different question: of the small, mechanical changes a
mutation tool makes to the reference code (`<` for `<=`, `and` for `or`, `break` for
`continue`, a number plus one ...), how many does the suite notice? It uses cosmic-ray's
operators and runner, samples a fixed subset, runs the suite against each mutant, and prints
the score per model. Not part of CI: a mutant takes ~20 s (up to ~1.5 min for shared code).

    python -m tools.mutation --sample 50 --seed 9 --timeout 240
    python -m tools.mutation --sample 50 --seed 9 --list        # the sample, without running it

What the command does for each sampled mutant, and why:

- It writes the mutant into the file in place (cosmic-ray's `mutate_and_test`, which puts the
  original back afterwards) and runs `pytest conformance -x` in a subprocess, killed after
  `--timeout` seconds; a timeout counts as killed, as cosmic-ray counts it, but is shown apart.
- A mutant of a model's own file runs against that model; a mutant of shared code (a module of
  `impls/_core`, `impls/_sockets.py`) runs against every model that imports it: a change to the
  send queue that only the IOCP model would show is still a kill.
- Each run gets a fresh Hypothesis example database (HYPOTHESIS_STORAGE_DIRECTORY): a database
  shared between mutants would replay the last mutant's failing example against the next one.
- Each run is inside its own network namespace (`unshare -n`, loopback brought up), so the
  sockets that hundreds of runs leave in TIME_WAIT never exhaust the machine's ephemeral
  ports, nor take ports from anybody else. This needs root (or user namespaces).
- Mutants that only change an annotation are equivalent in a file with
  `from __future__ import annotations` (annotations are never evaluated there): they are
  recognised by comparing the code with and without the mutation, annotations removed, and
  never sampled.

The sample is stable: each mutant gets a key from its file, the function it is in, the
operator and the text of its line (not its position), and the sample is the mutants whose
seeded hash of that key ranks lowest, split evenly over the files. So the same `--seed` picks
the same mutants after the code elsewhere in the file changed, and a before/after comparison
measures the suite, not a different sample.

Results: the table on stdout; every mutant with its diff, outcome, time and the clauses that
failed in `<workdir>/results.json`; and cosmic-ray's own session database
`<workdir>/session.sqlite` (`cr-report <workdir>/session.sqlite` prints its report). The
score leaves out the survivors judged equivalent in `tools/mutation_triage.json` (by key, so a
later run of the same sample is judged the same way); docs/mutants.md says why for each.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The built-in models' names (as `--impl` spells them) and their files.
MODELS: dict[str, str] = {
    "blocking": "impls/blocking.py",
    "select": "impls/select_.py",
    "epoll": "impls/epoll_et.py",
    "iocp": "impls/iocp.py",
    "trio": "impls/trio_.py",
}

# Survivors judged by hand, by key (see `stable_keys`), so a later run of the same sample
# scores with the same judgement; docs/mutants.md says why for each.
TRIAGE = ROOT / "tools" / "mutation_triage.json"

# The files of the first sampled run (issue 9), plus the select model.
DEFAULT_FILES = [
    "impls/epoll_et.py",
    "impls/iocp.py",
    "impls/select_.py",
    "impls/_core/send_queue.py",
    "impls/_core/lifecycle.py",
]


@dataclass
class Mutant:
    """One sampled mutant: where it is, what it changes, and what the suite made of it."""

    job_id: str
    path: str
    line: int
    definition: str
    operator: str
    occurrence: int
    key: str
    models: list[str]
    diff: str = ""
    outcome: str = "pending"  # killed, timeout, survived, error
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # "impl:clause[,clause]" of failed tests
    output: str = ""  # the end of what pytest printed


# -- which models a file belongs to ---------------------------------------------------------


def _dotted(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def models_using(path: str) -> list[str]:
    """The models whose behaviour a change to `path` can alter.

    A model's own file is that model. Any other file is every model that imports it, where
    importing a package (`from impls._core import SendQueue`) counts as importing each of
    its modules: the package re-exports them.
    """
    own = [name for name, file in MODELS.items() if file == path]
    if own:
        return own
    module = _dotted(path)
    users = []
    for name, file in MODELS.items():
        imported = _imported_modules(ROOT / file)
        if any(module == m or module.startswith(m + ".") for m in imported):
            users.append(name)
    return users


# -- equivalent mutants: only an annotation changed -----------------------------------------


def _has_postponed_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )


class _DropAnnotations(ast.NodeTransformer):
    """Removes every annotation that is never evaluated under postponed annotations."""

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        self.generic_visit(node)
        return node

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        # A dataclass reads one thing from a field's annotation string: whether it names
        # ClassVar or InitVar. Keep those; any other annotation is only text.
        text = ast.unparse(node.annotation)
        if "ClassVar" not in text and "InitVar" not in text:
            node.annotation = ast.Constant(value=None)
        self.generic_visit(node)
        return node


def only_annotations_differ(original: str, mutated: str) -> bool:
    """True when the two sources run the same: they differ in annotations alone."""
    before = ast.parse(original)
    if not _has_postponed_annotations(before):
        return False
    try:
        after = ast.parse(mutated)
    except SyntaxError:
        return False
    strip = _DropAnnotations()
    return ast.dump(strip.visit(before)) == ast.dump(strip.visit(after))


# -- the stable sample ----------------------------------------------------------------------


def stable_keys(items: Sequence[tuple[str, str, str, int, str]]) -> list[str]:
    """A key per (path, definition, operator, line, line text) that survives edits elsewhere.

    Positions shift when code above changes; the function, the operator and the text of the
    line do not. Mutants that agree on all of those are told apart by their order.
    """
    seen: Counter[str] = Counter()
    keys = []
    for path, definition, operator, _line, text in items:
        base = f"{path}|{definition}|{operator}|{text.strip()}"
        keys.append(f"{base}|{seen[base]}")
        seen[base] += 1
    return keys


def rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()


def shares(total: int, files: Sequence[str]) -> dict[str, int]:
    """`total` split evenly over `files`, the remainder to the first ones."""
    base, extra = divmod(total, len(files))
    return {f: base + (1 if i < extra else 0) for i, f in enumerate(files)}


# -- running --------------------------------------------------------------------------------


def _suite_command(mutant: Mutant, args: argparse.Namespace, workdir: Path) -> list[str]:
    storage = tempfile.mkdtemp(prefix="hypothesis-", dir=workdir)
    report = workdir / f"{mutant.job_id}.json"
    pytest = [
        sys.executable, "-m", "pytest", "conformance", f"--impl={','.join(mutant.models)}",
        "-x", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
        f"--hypothesis-profile={args.profile}", f"--hypothesis-seed={args.hypothesis_seed}",
        f"--conformance-report={report}", "--conformance-replays=0", *args.pytest_args,
    ]
    # $0 is the database directory; the rest is the pytest command, run with exec so that the
    # timeout's kill of the process group reaches it. cosmic-ray keeps stdout only: a usage
    # error (exit status 4) says why on stderr.
    run = 'HYPOTHESIS_STORAGE_DIRECTORY="$0" exec "$@" 2>&1'
    if args.netns:
        command = ["unshare", "-n", "sh", "-c", f"ip link set lo up && {run}", storage, *pytest]
    else:
        command = ["sh", "-c", run, storage, *pytest]
    if args.nice:
        command = ["nice", "-n", str(args.nice), *command]
    return command


def _failed_clauses(report: Path) -> list[str]:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return []
    return [f"{f['impl']}:{','.join(f['clauses'])}" for f in data.get("failures", [])]


def run_mutant(mutant: Mutant, spec: Any, args: argparse.Namespace, workdir: Path) -> Any:
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    command = shlex.join(_suite_command(mutant, args, workdir))
    started = time.monotonic()
    result = mutate_and_test([spec], command, args.timeout)
    mutant.seconds = round(time.monotonic() - started, 1)
    mutant.diff = result.diff or ""
    if result.worker_outcome != WorkerOutcome.NORMAL:
        mutant.outcome = "error"
    elif result.test_outcome == TestOutcome.SURVIVED:
        mutant.outcome = "survived"
    elif result.output == "timeout":
        mutant.outcome = "timeout"
    else:
        mutant.outcome = "killed"
    mutant.output = "\n".join((result.output or "").splitlines()[-40:])
    mutant.failed = _failed_clauses(workdir / f"{mutant.job_id}.json")
    if mutant.outcome == "killed" and not mutant.failed:
        # Killed without a clause verdict: the plugin's start/stop probe refused the server
        # (it says so on a line of its own), or the mutant broke an import.
        probe = [line for line in mutant.output.splitlines() if line.startswith("ERROR: --impl")]
        mutant.failed = [f"(no clause) {probe[0].split('. ')[0]}" if probe
                         else "(no clause: the run ended in an error)"]
    return result


# -- the table ------------------------------------------------------------------------------


def load_triage(path: Path) -> dict[str, tuple[str, str]]:
    """Survivors judged by hand: key -> (verdict, why); verdict is "equivalent" or "missed"."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {key: (entry["verdict"], entry["why"]) for key, entry in data.items()}


def verdict(m: Mutant, triage: dict[str, tuple[str, str]]) -> str:
    """killed, timeout, equivalent, missed, or untriaged (a survivor nobody judged yet)."""
    if m.outcome != "survived":
        return m.outcome
    return triage[m.key][0] if m.key in triage else "untriaged"


def score_table(mutants: Iterable[Mutant], triage: dict[str, tuple[str, str]]) -> list[str]:
    rows: dict[str, list[Mutant]] = {}
    for m in mutants:
        rows.setdefault(m.path, []).append(m)
    head = (f"{'file':<27} {'run against':<31} {'killed':>6} {'t/o':>3} {'equiv':>5} "
            f"{'missed':>6} {'new':>3} {'score':>5}")
    lines = [head, "-" * len(head)]
    total = Counter[str]()
    for path, ms in rows.items():
        c = Counter(verdict(m, triage) for m in ms)
        total.update(c)
        lines.append(_row(path, ",".join(ms[0].models), c))
    lines.append("-" * len(head))
    lines.append(_row("all", "", total))
    return lines


def _row(label: str, models: str, c: Counter[str]) -> str:
    # Equivalent mutants cannot be killed: they are left out of the score. A survivor not
    # yet triaged ("new") counts as missed until someone shows it is equivalent.
    caught = c["killed"] + c["timeout"]
    judged = caught + c["missed"] + c["untriaged"]
    score = f"{100 * caught / judged:.0f}%" if judged else "-"
    return (f"{label:<27} {models:<31} {c['killed']:>6} {c['timeout']:>3} {c['equivalent']:>5} "
            f"{c['missed']:>6} {c['untriaged']:>3} {score:>5}")


# -- main -----------------------------------------------------------------------------------


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.append(int(stat.parent.name))
    return found


def _terminate(signum: int, frame: FrameType | None) -> None:
    # cosmic-ray starts each run in a session of its own, so the run's pid is its process
    # group: end it, then unwind through restore_contents(), which puts the original file back.
    for pid in _children():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.mutation",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--sample", type=int, default=50,
                   help="mutants in total, split evenly over the files")
    p.add_argument("--seed", type=int, default=9,
                   help="picks the sample and the suite's Hypothesis seed")
    p.add_argument("--hypothesis-seed", type=int, default=None,
                   help="the suite's Hypothesis seed, if not --seed")
    p.add_argument("--timeout", type=float, default=240.0,
                   help="seconds per mutant; a run killed then counts as killed (t/o)")
    p.add_argument("--model", default=None, metavar="NAME[,NAME...]",
                   help=f"mutate these models' own files ({', '.join(MODELS)}) instead of --files")
    p.add_argument("--files", default=",".join(DEFAULT_FILES), metavar="PATH[,PATH...]",
                   help="files to mutate, relative to the repository root")
    p.add_argument("--profile", default="kill",
                   help="the suite's Hypothesis profile (default kill: a verdict, no shrinking)")
    p.add_argument("--nice", type=int, default=10, help="niceness of each run (0: none)")
    p.add_argument("--no-netns", dest="netns", action="store_false",
                   help="run without a network namespace of its own (when not root)")
    p.add_argument("--workdir", default=".mutation", help="results, session database, scratch")
    p.add_argument("--list", action="store_true", help="print the sample and stop")
    p.add_argument("--summary", action="store_true",
                   help="print the table of the last run in --workdir again, without running")
    p.add_argument("pytest_args", nargs="*", help="after --: more arguments for pytest")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.hypothesis_seed is None:
        args.hypothesis_seed = args.seed
    if args.summary:
        results = (ROOT / args.workdir / "results.json").resolve()
        summarize([Mutant(**m) for m in json.loads(results.read_text())], results)
        return 0
    try:
        from cosmic_ray.commands.init import init
        from cosmic_ray.mutating import mutate_code
        from cosmic_ray.plugins import get_operator
        from cosmic_ray.work_db import WorkDB, use_db
        from cosmic_ray.work_item import WorkerOutcome, WorkResult
    except ImportError:
        print("cosmic-ray is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2

    files = ([MODELS[m] for m in args.model.split(",")] if args.model
             else [f for f in args.files.split(",") if f])
    missing = [f for f in files if not (ROOT / f).is_file()]
    if missing:
        print(f"no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.netns and shutil.which("unshare") is None:
        print("unshare not found; use --no-netns", file=sys.stderr)
        return 2

    # --list only reads: it must not clear the session of a run going on in the workdir.
    workdir = Path(tempfile.mkdtemp()) if args.list else (ROOT / args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.list:
        # Two runs in one tree would write their mutants over each other's files.
        lock = os.open(ROOT / "impls", os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another mutation run is going on in {ROOT}", file=sys.stderr)
            return 2
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _terminate)

    # cosmic-ray's paths are relative to where the suite runs: the repository root.
    os.chdir(ROOT)
    session = workdir / "session.sqlite"
    session.unlink(missing_ok=True)
    with use_db(str(session), WorkDB.Mode.create) as db:
        init([Path(f) for f in files], db, {})
        items = list(db.work_items)

        sources = {f: (ROOT / f).read_text() for f in files}
        described = []
        for item in items:
            spec = item.mutations[0]
            path = str(spec.module_path)
            line = spec.start_pos[0]
            text = sources[path].splitlines()[line - 1]
            described.append((path, spec.definition_name or "<module>", spec.operator_name,
                              line, text))
        # Two mutants of one line by one operator (a number made 1 or -1) differ only in their
        # occurrence: number them in that order.
        order = sorted(range(len(items)), key=lambda i: (
            described[i][0], described[i][3], described[i][2], items[i].mutations[0].occurrence))
        key_of = dict(zip(order, stable_keys([described[i] for i in order]), strict=True))

        by_file: dict[str, list[tuple[str, int]]] = {}
        for i, d in enumerate(described):
            by_file.setdefault(d[0], []).append((rank(args.seed, key_of[i]), i))

        sample: list[tuple[Mutant, Any]] = []
        equivalent = 0
        for path, quota in shares(args.sample, files).items():
            models = models_using(path)
            taken = 0
            for _, i in sorted(by_file.get(path, [])):
                item, d = items[i], described[i]
                if taken == quota:
                    break
                spec = item.mutations[0]
                mutated = mutate_code(sources[path], get_operator(spec.operator_name)(),
                                      spec.occurrence)
                if mutated is None or only_annotations_differ(sources[path], mutated):
                    equivalent += 1
                    continue
                sample.append((Mutant(item.job_id, path, d[3], d[1], spec.operator_name,
                                      spec.occurrence, key_of[i], models), item))
                taken += 1

        chosen = {m.job_id for m, _ in sample}
        db.set_multiple_results(
            [i.job_id for i in items if i.job_id not in chosen],
            WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                       output="not in the sample (tools.mutation)"),
        )
        print(f"{len(items)} mutants in {len(files)} files; sampled {len(sample)} "
              f"(seed {args.seed}); {equivalent} annotation-only (or no-op) mutants passed over")
        if args.list:
            for m, _ in sample:
                print(f"  {m.path}:{m.line} {m.definition} {m.operator} -> {','.join(m.models)}"
                      f"\n      key {m.key!r}")
            return 0

        results = workdir / "results.json"
        for n, (m, item) in enumerate(sample, 1):
            result = run_mutant(m, item.mutations[0], args, workdir)
            db.set_result(item.job_id, result)
            print(f"[{n}/{len(sample)}] {m.outcome:<8} {m.seconds:6.1f}s {m.path}:{m.line} "
                  f"{m.operator} {' '.join(m.failed)}", flush=True)
            results.write_text(json.dumps([asdict(x) for x, _ in sample], indent=2) + "\n")

    summarize([m for m, _ in sample], results)
    return 0


def summarize(mutants: Sequence[Mutant], results: Path) -> None:
    triage = load_triage(TRIAGE)
    print()
    print("\n".join(score_table(mutants, triage)))
    times = [m.seconds for m in mutants if m.outcome != "pending"]
    if times:
        print(f"\nseconds per mutant: median {statistics.median(times):.1f}, max {max(times):.1f}")
    survivors = [m for m in mutants if m.outcome == "survived"]
    if survivors:
        print(f"\nsurvivors (their diffs are in results.json; triage: {TRIAGE.relative_to(ROOT)}):")
        for m in survivors:
            judged, why = triage.get(m.key, ("untriaged", "add it to the triage file"))
            print(f"  {m.path}:{m.line} in {m.definition}: {m.operator}\n"
                  f"      key {m.key!r}\n      {judged}: {why}")
    print(f"\nresults: {results}")


if __name__ == "__main__":
    sys.exit(main())
