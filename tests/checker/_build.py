"""A small builder for synthetic traces, numbering events the way the Recorder does.

Each call begins at the next sequence number and ends at the one after (an instant -- a peer's
action, a fault, stop(), a note -- ends where it begins), so
events built one after another never overlap. `at()` builds an event with explicit
[seq, end_seq] for the overlap cases.
"""

from __future__ import annotations

from typing import Any

from conformance._checker import Violation
from conformance._trace import CALLS, Kind, TraceEvent


class TraceBuilder:
    def __init__(self, thread: str = "worker-1") -> None:
        self.seq = 0
        self.thread = thread
        self.events: list[TraceEvent] = []

    def add(
        self,
        kind: Kind,
        session_id: Any,
        *,
        data: bytes = b"",
        result: bool | None = None,
        detail: str = "",
        peer_port: int | None = None,
        thread: str | None = None,
        error: str = "",
    ) -> TraceEvent:
        self.seq += 1
        seq = self.seq
        if kind in CALLS:
            self.seq += 1
        event = TraceEvent(
            seq=seq,
            end_seq=self.seq,
            kind=kind,
            session_id=session_id,
            data=data,
            result=result,
            thread=thread if thread is not None else self.thread,
            t=seq / 1000,
            detail=detail,
            peer_port=peer_port,
            error=error,
        )
        self.events.append(event)
        return event

    def connect(self, session_id: Any, port: int | None = None) -> TraceEvent:
        port = port if port is not None else 40000 + (session_id if type(session_id) is int else 0)
        return self.add(Kind.CONNECT, session_id, detail=repr(("127.0.0.1", port)), peer_port=port)

    def recv(self, session_id: Any, data: bytes) -> TraceEvent:
        return self.add(Kind.RECV, session_id, data=data)

    def release(self, session_id: Any, *, cause: bool = True) -> TraceEvent:
        """on_release; with `cause`, after a note of its peer's FIN (S12: a release has one)."""
        if cause:
            self.fin(session_id)
        return self.add(Kind.RELEASE, session_id)

    def fin(self, session_id: Any) -> TraceEvent:
        return self.peer("peer SHUT_WR (half-close)", Kind.PEER_CLOSE, session_id=session_id)

    def send(self, session_id: Any, data: bytes, result: bool | None = True) -> TraceEvent:
        return self.add(Kind.SEND, session_id, data=data, result=result, thread="test")

    def disconnect(self, session_id: Any, result: bool | None = True) -> TraceEvent:
        return self.add(Kind.DISCONNECT, session_id, result=result, thread="test")

    def peer(
        self, text: str, kind: Kind = Kind.PEER, *, session_id: int | None = None,
        peer_port: int | None = None,
    ) -> TraceEvent:
        """A test peer's action (PEER_CLOSE: FIN/RST/close) or what it saw (PEER_SAW_RESET);
        by `peer_port` alone if made before the id was known."""
        return self.add(kind, session_id, detail=text, peer_port=peer_port, thread="MainThread")

    def stop(self) -> TraceEvent:
        return self.add(Kind.STOP, None, detail="the test calls stop()", thread="MainThread")

    def note(self, text: str, *, session_id: int | None = None) -> TraceEvent:
        """The test's remark."""
        return self.add(Kind.NOTE, session_id, detail=text, thread="MainThread")

    def session(self, session_id: int, *chunks: bytes, release: bool = True) -> None:
        """A whole well-behaved session: on_connect, on_recv per chunk, on_release."""
        self.connect(session_id)
        for chunk in chunks:
            self.recv(session_id, chunk)
        if release:
            self.release(session_id)


def at(
    seq: int, end_seq: int, kind: Kind, session_id: Any, data: bytes = b"", thread: str = "t"
) -> TraceEvent:
    """One event with an explicit [seq, end_seq] interval."""
    return TraceEvent(
        seq=seq, end_seq=end_seq, kind=kind, session_id=session_id, data=data, thread=thread
    )


def clauses(violations: list[Violation]) -> list[str]:
    """The clause ids of `violations`, in order."""
    return [v.clause for v in violations]
