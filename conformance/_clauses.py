"""The clauses S1-S13 as data: the one place their ids, titles and sentences are written.

Failures quote the sentence, the summary table orders columns by id, and `tests/` checks that
`docs/contract.md` has a section for each clause.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAUSES", "Clause", "clause"]


@dataclass(frozen=True)
class Clause:
    id: str
    title: str
    sentence: str

    def __str__(self) -> str:
        return f"{self.id} {self.title}"


_TABLE = [
    ("S1", "identity",
     "Session ids are ints in [0, 2**64); an id is never given to two sessions in one "
     "server's lifetime, even though the OS reuses socket handles."),
    ("S2", "lifecycle",
     "Per id: on_connect first, then on_recv*, then on_release exactly once; no callback names "
     "an id after its on_release returned; callbacks for one id never overlap in time."),
    ("S3", "inbound stream",
     "The concatenation of on_recv data equals the bytes the peer sent, in order, whatever the "
     "chunking; on_recv is never called with empty data, and its data is bytes, which no "
     "later receive can change."),
    ("S4", "outbound stream",
     "The bytes of the send() calls that returned True reach the peer in call order, each "
     "call's bytes contiguous, none lost or duplicated, however the kernel splits the writes."),
    ("S5", "zero-byte recv",
     "When the peer closes (recv returns 0) the session is released within a bounded time; "
     "inbound data before the FIN is delivered before on_release; bytes accepted before the "
     "close was observed are still flushed to a peer that only half-closed."),
    ("S6", "would-block",
     "A peer that stops reading never makes send() block, never delays other sessions, never "
     "makes the server spin the CPU, and does not by itself end its session."),
    ("S7", "bounded queue",
     "send() returns False, queuing nothing of that call, when accepting it would put the "
     "session's queued bytes over send_queue_limit; the session stays open and send() succeeds "
     "again once the queue drains."),
    ("S8", "stale ids and late completions",
     "send() and disconnect() with an id that is unknown, released or closing return False and "
     "affect no other session; I/O in flight when a session ends never touches another session."),
    ("S9", "disconnect",
     "disconnect(id) returns True once for a live session; afterwards send(id) returns False; "
     "accepted bytes are flushed, then the connection closes (or is aborted once linger "
     "expires); on_release(id) follows exactly once."),
    ("S10", "accept",
     "Bursts of simultaneous connects are all accepted; the server keeps accepting while other "
     "sessions are busy or stalled."),
    ("S11", "stop",
     "stop() calls on_release for every live session before it returns, closes the listener and "
     "every socket, ends every thread it started, is idempotent; afterwards send() and "
     "disconnect() return False."),
    ("S12", "faults",
     "A peer reset releases that session only; an exception raised by a handler callback ends "
     "at most that session, and the server goes on serving the others."),
    ("S13", "re-entrancy",
     "send() and disconnect() may be called from inside any callback and from any thread, "
     "without deadlock."),
]

CLAUSES: dict[str, Clause] = {cid: Clause(cid, title, text) for cid, title, text in _TABLE}


def clause(cid: str) -> Clause:
    """Look a clause up by id, with an error that lists the valid ids."""
    try:
        return CLAUSES[cid]
    except KeyError:
        raise KeyError(f"no clause {cid!r}; the clauses are {', '.join(CLAUSES)}") from None
