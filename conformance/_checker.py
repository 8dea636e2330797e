"""The trace checker: S1-S4 judged from a recorded trace, with no I/O at all.

Every scenario of the suite ends with `check_trace()`: whatever else a test looks at, the ids
(S1), the order of callbacks (S2) and the bytes both ways (S3, S4) are checked on everything it
did. The functions here take events and bytes and return `Violation`s; `tests/checker/` feeds
them synthetic traces that break each clause.

A `ConformanceFailure` is the one exception the suite raises for a non-conforming
implementation. It reads like a verdict: the clause and its sentence, expected versus actual,
then the timeline of the sessions involved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from ._clauses import CLAUSES
from ._trace import PEER_KINDS, Kind, TraceEvent, session_of_port

__all__ = [
    "ConformanceFailure",
    "Stream",
    "Violation",
    "check_causes",
    "check_identity",
    "check_lifecycle",
    "check_streams",
    "check_trace",
    "render_timeline",
]

CALLBACKS = (Kind.CONNECT, Kind.RECV, Kind.RELEASE)


@dataclass(frozen=True)
class Violation:
    clause: str
    expected: str
    actual: str
    session_id: int | None = None

    def __str__(self) -> str:
        return f"{self.clause}: expected {self.expected}; actual: {self.actual}"


@dataclass(frozen=True)
class Stream:
    """What one test peer did, to compare with what the implementation reported.

    Attributes:
        session_id: the id the implementation gave this peer's connection.
        peer_sent: every byte the peer wrote.
        inbound_complete: the peer finished sending and the test waited for the release, so
            on_recv must have delivered all of `peer_sent` (S3, S5); else a prefix suffices.
        peer_received: every byte the peer read.
        outbound_complete: the peer read until EOF after a graceful close, so it must have
            received every accepted byte (S4, S5, S9); else a prefix suffices.
    """

    session_id: int
    peer_sent: bytes = b""
    inbound_complete: bool = False
    peer_received: bytes = b""
    outbound_complete: bool = False


# ---- S1 identity


def check_identity(events: Iterable[TraceEvent]) -> list[Violation]:
    """S1: every id is an int in [0, 2**64), and no id is given to two connections."""
    found: list[Violation] = []
    connects: dict[object, int] = defaultdict(int)
    for e in events:
        if e.kind is not Kind.CONNECT:
            continue
        sid = e.session_id
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid < 2**64:
            found.append(Violation("S1", "an int in [0, 2**64)", f"session id {sid!r}", None))
            continue
        connects[sid] += 1
        if connects[sid] == 2:
            found.append(
                Violation(
                    "S1",
                    f"id {sid} given to one connection only",
                    f"on_connect({sid}, ...) was called again for a second connection "
                    "(is the id a socket handle? the OS reuses those)",
                    sid,
                )
            )
    return found


# ---- S2 lifecycle


def check_lifecycle(events: Sequence[TraceEvent], *, final: bool) -> list[Violation]:
    """S2: on_connect first, on_recv*, on_release once and last, no overlap per id.

    With `final=True` (the server was stopped) every connected id must have been released.
    Ids that S1 already reports as reused are skipped: their two lives are indistinguishable.
    """
    found: list[Violation] = []
    per_id: dict[int, list[TraceEvent]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e.seq):
        if e.kind in CALLBACKS and isinstance(e.session_id, int):
            per_id[e.session_id].append(e)
    for sid, calls in per_id.items():
        if sum(c.kind is Kind.CONNECT for c in calls) > 1:
            continue
        if calls[0].kind is not Kind.CONNECT:
            found.append(
                Violation("S2", f"on_connect({sid}) before any other callback for it",
                          f"first callback was {calls[0].describe()}", sid)
            )
        releases = [c for c in calls if c.kind is Kind.RELEASE]
        if len(releases) > 1:
            found.append(
                Violation("S2", f"on_release({sid}) exactly once",
                          f"it was called {len(releases)} times", sid)
            )
        if releases:
            done = releases[0].end_seq
            late = [c for c in calls if c.seq > done]
            if late and len(releases) == 1:
                found.append(
                    Violation("S2", f"no callback for {sid} after on_release({sid}) returned",
                              f"{late[0].describe()} came after it", sid)
                )
        elif final:
            found.append(
                Violation("S2", f"on_release({sid}) before stop() returned",
                          "it was never called", sid)
            )
        for before, after in pairwise(calls):
            if after.seq < before.end_seq:
                found.append(
                    Violation(
                        "S2",
                        f"callbacks for {sid} never overlap in time",
                        f"{after.describe()} [thread {after.thread}] began while "
                        f"{before.describe()} [thread {before.thread}] was still running",
                        sid,
                    )
                )
                break
    return found


# ---- S3, S4 the two byte streams


def check_streams(events: Sequence[TraceEvent], streams: Iterable[Stream]) -> list[Violation]:
    """S3: on_recv data is what the peer sent; S4: the peer got what send() accepted."""
    found: list[Violation] = []
    recv: dict[int, list[bytes]] = defaultdict(list)
    accepted: dict[int, list[bytes]] = defaultdict(list)
    # per session, what is wrong with the objects on_recv was passed: the first one whose
    # bytes changed if any (the clearest evidence), else the first one
    lent: dict[int, tuple[bool, str]] = {}
    for e in sorted(events, key=lambda e: e.seq):
        if not isinstance(e.session_id, int):
            continue
        if e.kind is Kind.RECV:
            if not e.data:
                found.append(
                    Violation("S3", "on_recv never called with empty data",
                              f"on_recv({e.session_id}, b'') was called", e.session_id)
                )
            wrong = _not_immutable(e)
            if wrong and not lent.get(e.session_id, (False, ""))[0]:
                lent.setdefault(e.session_id, wrong)
                if wrong[0]:
                    lent[e.session_id] = wrong
            recv[e.session_id].append(e.data)
        elif e.kind is Kind.SEND and e.result:
            accepted[e.session_id].append(e.data)
    for sid, (_, actual) in lent.items():
        found.append(Violation("S3", f"on_recv({sid}, data) to pass bytes, the same value for "
                               "ever (the application may keep it)", actual, sid))
    for s in streams:
        delivered = b"".join(recv[s.session_id])
        problem = _compare(s.peer_sent, delivered, s.inbound_complete)
        if problem:
            found.append(
                Violation("S3", f"on_recv data for {s.session_id} to be {problem[0]} "
                          "the bytes its peer sent", problem[1], s.session_id)
            )
        queued = b"".join(accepted[s.session_id])
        problem = _compare(queued, s.peer_received, s.outbound_complete)
        if problem:
            found.append(
                Violation("S4", f"the peer of {s.session_id} to receive {problem[0]} the bytes "
                          "of the send() calls that returned True", problem[1], s.session_id)
            )
    return found


def _not_immutable(e: TraceEvent) -> tuple[bool, str] | None:
    """What is wrong with the object an on_recv was passed -- (its bytes changed, what) --
    or None if it is bytes.

    A subclass of bytes is bytes: its value cannot change either. Anything else -- a
    memoryview or bytearray of a receive buffer, typically -- is reported with what became of
    its bytes since the copy taken at delivery (`TraceEvent.data`)."""
    passed = e.passed
    if passed is None or isinstance(passed, bytes):
        return None
    kind = f"a {type(passed).__name__}, not bytes"
    try:
        now = bytes(passed)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:  # e.g. a memoryview released since
        return True, f"{kind}, unreadable after on_recv returned ({exc})"
    if now == e.data:
        return False, (f"{kind} (its bytes had not changed by the end, but nothing stops "
                       "them changing)")
    problem = _compare(e.data, now, complete=True)
    return True, (f"{kind}, whose bytes changed after on_recv returned (a receive buffer "
                  f"reused for later data?): {problem[1] if problem else ''}")


def _compare(truth: bytes, seen: bytes, complete: bool) -> tuple[str, str] | None:
    """None if `seen` is `truth` (complete) or a prefix of it; else (wanted, what differs)."""
    wanted = "exactly" if complete else "a prefix of"
    if seen == truth or (not complete and truth.startswith(seen)):
        return None
    at = next((i for i, (a, b) in enumerate(zip(truth, seen, strict=False)) if a != b), None)
    if at is not None:
        return wanted, (
            f"they differ first at byte {at} (of {len(truth)} expected, {len(seen)} seen): "
            f"expected {truth[at:at + 16]!r}, got {seen[at:at + 16]!r}"
        )
    if len(seen) > len(truth):
        return wanted, (
            f"{len(seen) - len(truth)} extra bytes after the {len(truth)} expected: "
            f"{seen[len(truth):len(truth) + 16]!r} (duplicated, or another session's?)"
        )
    return wanted, f"only {len(seen)} of {len(truth)} bytes arrived; missing from byte {len(seen)}"


def check_trace(
    events: Sequence[TraceEvent], streams: Iterable[Stream] = (), *, final: bool = False
) -> list[Violation]:
    """Every check, in clause order."""
    return (
        check_identity(events)
        + check_lifecycle(events, final=final)
        + check_streams(events, streams)
        + check_causes(events)
    )


def check_causes(events: Sequence[TraceEvent]) -> list[Violation]:
    """Every ending has a reason of its own, and no thread dies.

    S2: a session ends -- on_release, or its peer sees the connection reset -- only for a
    reason of its own: its peer's FIN or RST (PEER_CLOSE) or a reset injected into it
    (FAULT_RESET), disconnect() of its id, its own callback raising, or stop(). An ending with
    none of these before it is a bug: a would-block taken for the peer's close, a late
    completion landing on the next session that uses the same socket handle, one socket's
    error tearing down its neighbour.

    S12: no thread of the implementation dies of an exception (an error ends at most one
    session; a dead worker or loop stops serving all of them).
    """
    ordered = sorted(events, key=lambda e: e.seq)
    session_of = _sessions_of(ordered)
    explained: set[int] = set()
    stopping = False  # stop() was called: every ending from then on has its reason
    out: list[Violation] = []
    for e in ordered:
        if e.kind is Kind.THREAD_DIED:
            out.append(Violation(
                "S12", "every thread of the server to go on serving (an error ends at "
                "most one session)", e.describe()))
            continue
        if e.kind is Kind.STOP:
            stopping = True
            continue
        sid = session_of(e)
        if sid is None:
            continue
        if (e.kind in (Kind.PEER_CLOSE, Kind.FAULT_RESET)
                or (e.kind is Kind.DISCONNECT and e.result)
                or (e.kind in CALLBACKS and e.error)):
            explained.add(sid)
        elif e.kind is Kind.PEER_SAW_RESET and sid not in explained and not stopping:
            explained.add(sid)  # one report per session
            out.append(_unexplained(sid, f"its peer saw the connection reset "
                                         f"({e.detail}) with none of these before it"))
        elif e.kind is Kind.RELEASE and sid not in explained and not stopping:
            explained.add(sid)
            out.append(_unexplained(sid, f"on_release({sid}) came with none of these before it"))
    return out


def _unexplained(sid: int, actual: str) -> Violation:
    return Violation(
        "S2", f"session {sid} to live until its peer closes or resets, disconnect({sid}), a "
        f"callback of its own raises, or stop()", actual, sid)


# ---- the verdict


def render_timeline(
    events: Sequence[TraceEvent],
    session_ids: Iterable[int] | None = None,
    *,
    max_sessions: int = 4,
    max_lines: int = 24,
) -> str:
    """The per-session timeline a student reads: one block per session, in causal order;
    then, unless `session_ids` are chosen, a `test:` block of what belongs to no session
    (stop(), the test's remarks, a thread that died, a fault of accept()).

    What a peer did before its id was known is placed with the session its port got. Each
    line names who did it: the peer, the test, or the thread the implementation ran it on
    (a callback, or an injected fault, which happens on the thread that met it).
    """
    ordered = sorted(events, key=lambda e: e.seq)
    session_of = _sessions_of(ordered)
    blocks: dict[int | None, list[TraceEvent]] = defaultdict(list)
    for e in ordered:
        blocks[session_of(e)].append(e)
    wanted = list(session_ids) if session_ids is not None else [k for k in blocks if k is not None]
    wanted = list(dict.fromkeys(wanted))
    lines: list[str] = []
    for sid in wanted[:max_sessions]:
        evs = blocks.get(sid, [])
        lines.append(f"session {sid}:" if evs else f"session {sid}: (no events)")
        shown = evs if len(evs) <= max_lines else evs[: max_lines // 2] + evs[-max_lines // 2 :]
        for i, e in enumerate(shown):
            if len(evs) > max_lines and i == max_lines // 2:
                lines.append(f"    ... {len(evs) - max_lines} more events ...")
            lines.append(_line(e))
    if len(wanted) > max_sessions:
        lines.append(f"({len(wanted) - max_sessions} more sessions not shown)")
    if None in blocks and session_ids is None:
        lines.append("test:")
        lines.extend(_line(e) for e in blocks[None][-8:])
    return "\n".join(lines)


def _line(e: TraceEvent) -> str:
    if e.kind in PEER_KINDS:
        who = "peer"
    elif e.kind in (Kind.STOP, Kind.NOTE):
        who = "test"
    else:
        who = e.thread
    return f"  {e.t:+9.4f}s  {who:<14.14} {e.describe()}"


def _sessions_of(ordered: Sequence[TraceEvent]) -> Callable[[TraceEvent], int | None]:
    """Which session each event of a trace belongs to: its id, or, for a peer's event made
    before its id was known, the session its client port got (`session_of_port`)."""
    connects: defaultdict[int, list[tuple[int, int | None]]] = defaultdict(list)
    for e in ordered:
        if e.kind is Kind.CONNECT and e.peer_port is not None:
            connects[e.peer_port].append((e.seq, e.session_id))

    def session_of(e: TraceEvent) -> int | None:
        if e.session_id is not None or e.peer_port is None:
            return e.session_id
        return session_of_port(connects[e.peer_port], e.peer_since)

    return session_of


class ConformanceFailure(AssertionError):
    """The implementation broke a clause. `clauses` names every clause found broken."""

    def __init__(
        self, clause_id: str, expected: str, actual: str, timeline: str = "",
        also: Sequence[Violation] = (),
    ) -> None:
        self.clause = clause_id
        self.clauses = list(dict.fromkeys([clause_id, *(v.clause for v in also)]))
        # The parts, for reports that show them apart (`--conformance-report`).
        self.expected, self.actual, self.timeline = expected, actual, timeline
        self.also = [str(v) for v in also]
        c = CLAUSES[clause_id]
        parts = [
            f"{c.id} {c.title}: {c.sentence}",
            f"  expected: {expected}",
            f"  actual:   {actual}",
        ]
        for v in also[:5]:
            parts.append(f"  also {v}")
        if len(also) > 5:
            parts.append(f"  ... and {len(also) - 5} more violations")
        if timeline:
            parts += ["timeline (seconds since the scenario began, thread, event):", timeline]
        super().__init__("\n".join(parts))

    def add(self, more: Sequence[Violation]) -> None:
        """Name further violations found in the trace (after the message was made)."""
        new = [v for v in more if v.clause not in self.clauses]
        if not new:
            return
        self.clauses += list(dict.fromkeys(v.clause for v in new))
        self.also += [str(v) for v in new]
        lines = [f"  also {v}" for v in new[:5]]
        self.args = ("\n".join([str(self.args[0]), "found in the trace so far:", *lines]),)

    @classmethod
    def from_violations(
        cls, violations: Sequence[Violation], events: Sequence[TraceEvent]
    ) -> ConformanceFailure:
        first, *rest = violations
        ids = [v.session_id for v in violations if v.session_id is not None]
        return cls(first.clause, first.expected, first.actual,
                   render_timeline(events, ids or None), rest)
