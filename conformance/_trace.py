"""The recorder: the SessionHandler the suite hands to an implementation.

Every callback, every send()/disconnect()/stop() the suite makes, every action of a test peer,
every fault injected and every thread of the implementation that dies becomes one `TraceEvent`,
of a `Kind` that says which of these it is. The checker (`_checker.py`) judges S1-S4 from the
trace alone, and a failure prints it as a per-session timeline.

Order comes from a sequence counter taken under a lock, not from the clock: two callbacks for
one id overlap exactly when their [seq, end_seq] intervals intersect (S2), which no clock
resolution can blur. The clock (`t`) is only for humans reading the timeline.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from .api import SessionServer

__all__ = ["CALLS", "PEER_KINDS", "Connecting", "Kind", "Recorder", "TraceEvent",
           "session_of_port"]


class Kind(enum.Enum):
    # The implementation's callbacks.
    CONNECT = "on_connect"
    RECV = "on_recv"
    RELEASE = "on_release"
    # The test's calls into it.
    SEND = "send"
    DISCONNECT = "disconnect"
    STOP = "stop"  # the test calls stop(): from here on every session may end (S2, S11)
    # What happens around it, at one instant each.
    PEER = "peer"  # a test peer acts or sees something that ends nothing (queues, reads EOF)
    PEER_CLOSE = "peer close"  # a test peer ends its side -- FIN, RST or close: a reason of
    #                            its session's own to end (S2)
    PEER_SAW_RESET = "peer saw reset"  # a test peer finds its connection reset: an ending,
    #                                    which needs a reason (S2)
    FAULT = "fault"  # a fault injected into a server socket, on the thread that met it
    FAULT_RESET = "fault reset"  # an injected reset: a reason for its session to end (S2)
    THREAD_DIED = "thread died"  # a thread of the implementation died of `error` (S12)
    NOTE = "note"  # the test's remark, for the reader: no verdict depends on it


# Kinds that are calls, with a duration: [seq, end_seq]; every other kind is an instant.
CALLS = frozenset({Kind.CONNECT, Kind.RECV, Kind.RELEASE, Kind.SEND, Kind.DISCONNECT})
# Kinds a test peer records: shown as the peer's in a timeline, placed by its client port.
PEER_KINDS = frozenset({Kind.PEER, Kind.PEER_CLOSE, Kind.PEER_SAW_RESET})


@dataclass(frozen=True, slots=True)
class TraceEvent:
    seq: int  # taken when the call began
    end_seq: int  # taken when it returned (== seq for an instant: a kind not in CALLS)
    kind: Kind
    session_id: int | None
    data: bytes = b""
    result: bool | None = None  # what send()/disconnect() returned
    thread: str = ""
    t: float = 0.0  # seconds since the recorder was created
    detail: str = ""  # the peer address (on_connect), or what happened, in words (an instant)
    error: str = ""  # what the callback raised, or what killed the thread (THREAD_DIED)
    # The client port: of on_connect's peer, and of a test peer's event made before its id was
    # known. A port is reused, so it names a peer only together with `peer_since`, the seq at
    # which that peer began connecting (see `session_of_port`).
    peer_port: int | None = None
    peer_since: int = 0
    # on_recv: the object the implementation passed, kept as it was (`data` is the copy taken
    # at delivery), so the check at the end can see that it is bytes and never changed (S3).
    passed: object = None

    def describe(self) -> str:
        """One line of timeline: `on_recv(3, 12 bytes b'hello')`."""
        if self.kind in (Kind.FAULT, Kind.FAULT_RESET):
            return f"fault: {self.detail}"
        if self.kind is Kind.THREAD_DIED:
            return f"{self.detail} of {self.error}"
        if self.kind not in CALLS:
            return self.detail
        sid = self.session_id
        if self.kind is Kind.CONNECT:
            text = f"on_connect({sid}, {self.detail})"
        elif self.kind is Kind.RECV:
            text = f"on_recv({sid}, {_show(self.data)})"
        elif self.kind is Kind.RELEASE:
            text = f"on_release({sid})"
        elif self.kind is Kind.SEND:
            text = f"send({sid}, {_show(self.data)}) -> {self.result}"
        else:
            text = f"disconnect({sid}) -> {self.result}"
        if self.error:
            text += f"  [raised {self.error}]"
        return text


def _show(data: bytes, limit: int = 24) -> str:
    head = data[:limit]
    more = "..." if len(data) > limit else ""
    return f"{len(data)} bytes {head!r}{more}"


Hook = Callable[["Recorder", int, bytes], None]


@dataclass
class _Indexes:
    """What tests wait for, kept up to date as events arrive (guarded by Recorder._cond)."""

    # client port -> [(seq of on_connect, session id)]: ports are reused, so keep them all
    # (see `session_of_port`)
    by_port: dict[int, list[tuple[int, int | None]]] = field(default_factory=dict)
    peer_of: dict[int, object] = field(default_factory=dict)  # id -> on_connect's `peer`
    received: dict[int, bytearray] = field(default_factory=dict)  # id -> on_recv bytes
    released: set[int] = field(default_factory=set)
    accepted_sends: dict[int, list[bytes]] = field(default_factory=dict)  # id -> send() == True
    # client port -> how many peers connected before it (the latest connection on the port)
    peer_order: dict[int, int] = field(default_factory=dict)
    peers: int = 0
    connecting: int = 0  # peers inside connect() that have not yet recorded their port


class Connecting(NamedTuple):
    """A test peer's place in the timeline and in the connect order, taken before connect()
    (see `Recorder.peer_connecting`)."""

    seq: int
    t: float
    order: int


class Recorder:
    """Records everything; runs optional hooks as the application's behaviour.

    Hooks are called inside the callback with the recorder, the id and the data (b"" for
    on_connect and on_release); they may call `send()` and `disconnect()` (S13) or raise (S12).
    An exception from a hook is recorded and re-raised to the implementation.
    """

    def __init__(
        self,
        on_connect: Hook | None = None,
        on_recv: Hook | None = None,
        on_release: Hook | None = None,
    ) -> None:
        self.server: SessionServer | None = None
        self.hooks: dict[Kind, Hook | None] = {
            Kind.CONNECT: on_connect,
            Kind.RECV: on_recv,
            Kind.RELEASE: on_release,
        }
        self._cond = threading.Condition()
        self._seq = 0
        self._t0 = time.monotonic()
        self.events: list[TraceEvent] = []
        self.index = _Indexes()

    # ---- the SessionHandler side: what the implementation calls

    def on_connect(self, session_id: int, peer: tuple[str, int]) -> None:
        self._callback(Kind.CONNECT, session_id, b"", peer)

    def on_recv(self, session_id: int, data: bytes) -> None:
        self._callback(Kind.RECV, session_id, data, None)

    def on_release(self, session_id: int) -> None:
        self._callback(Kind.RELEASE, session_id, b"", None)

    def _callback(
        self, kind: Kind, session_id: int, data: bytes, peer: tuple[str, int] | None
    ) -> None:
        seq, t = self._begin()
        detail = repr(tuple(peer)) if peer is not None else ""
        port = _port_of(peer)
        if kind is Kind.CONNECT:
            # Index before the hook runs: a test waiting for this peer's id must not have to
            # wait for a hook that may itself be waiting on the test.
            with self._cond:
                if port is not None:
                    self.index.by_port.setdefault(port, []).append((seq, session_id))
                self.index.peer_of[session_id] = peer
                self._cond.notify_all()
        passed: object = None
        if kind is Kind.RECV:
            # The hooks get a copy: what the application does stays the suite's; what the
            # implementation passed is judged by the checker, at the end of the scenario.
            passed, data = data, bytes(data)
        hook = self.hooks[kind]
        error = ""
        try:
            if hook is not None:
                hook(self, session_id, data)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._end(
                seq, t, kind, session_id, data=data, detail=detail, error=error,
                peer_port=port, passed=passed,
            )

    # ---- the application side: calls into the implementation, recorded

    def send(self, session_id: int, data: bytes) -> bool:
        """server.send(), recorded with its result (S4 accounting)."""
        assert self.server is not None, "Recorder.server is set by the harness after start()"
        seq, t = self._begin()
        result: bool | None = None
        try:
            result = self.server.send(session_id, data)
            return result
        finally:
            self._end(seq, t, Kind.SEND, session_id, data=bytes(data), result=result)

    def disconnect(self, session_id: int) -> bool:
        """server.disconnect(), recorded with its result."""
        assert self.server is not None, "Recorder.server is set by the harness after start()"
        seq, t = self._begin()
        result: bool | None = None
        try:
            result = self.server.disconnect(session_id)
            return result
        finally:
            self._end(seq, t, Kind.DISCONNECT, session_id, result=result)

    def peer_connecting(self) -> Connecting:
        """A test peer is about to connect: its place in the timeline and in the connect
        order, taken now, before the server can see the connection. The peer's port is
        known only once connect() has picked it (the kernel can then reuse a TIME_WAIT port
        pair, which a bind() first would forbid): `peer_connected` records it.
        Every call must be followed by one `peer_connected`, also when connect() failed."""
        seq, t = self._begin()
        with self._cond:
            order = self.index.peers
            self.index.peers += 1
            self.index.connecting += 1
        return Connecting(seq, t, order)

    def peer_connected(self, place: Connecting, port: int | None, failed: str = "") -> None:
        """The peer of `place` connects from `port` (None: connect() failed with `failed`)."""
        with self._cond:
            if port is not None:
                self.index.peer_order[port] = place.order
            self.index.connecting -= 1
            self._cond.notify_all()
        text = f"peer :{port} connecting" if port is not None else f"peer connect() {failed}"
        self._end(place.seq, place.t, Kind.PEER, None, detail=text, peer_port=port,
                  peer_since=place.seq)

    def peer_order(self, port: int, timeout: float) -> int | None:
        """How many test peers began connecting before the one on client `port` (None: no
        test peer connected from it). The server can accept a connection a moment before the
        peer's thread recorded its port, so this waits -- at most `timeout` seconds, and only
        while a peer is inside connect() -- for the port to be recorded."""
        with self._cond:
            self._cond.wait_for(lambda: not self.index.connecting, timeout)
            return self.index.peer_order.get(port)

    def record(
        self, kind: Kind, text: str, *, session_id: int | None = None,
        peer_port: int | None = None, peer_since: int = 0, error: str = "",
    ) -> int:
        """Put what happened around the calls -- an instant of `kind`, not in CALLS -- into
        the timeline; returns its seq. A reason for a session to end (PEER_CLOSE, FAULT_RESET,
        STOP) is recorded *before* the action, so that a release it causes comes after it
        (S2's check of causes). A test peer's event names its session by id once the test
        knows it, else by `peer_port` and `peer_since`."""
        assert kind not in CALLS, kind
        seq, t = self._begin()
        self._end(seq, t, kind, session_id, detail=text, peer_port=peer_port,
                  peer_since=peer_since, error=error)
        return seq

    def note(self, text: str, *, session_id: int | None = None) -> int:
        """The test's remark in the timeline, for the reader (no verdict depends on it)."""
        return self.record(Kind.NOTE, text, session_id=session_id)

    # ---- bookkeeping

    def _begin(self) -> tuple[int, float]:
        with self._cond:
            self._seq += 1
            return self._seq, time.monotonic() - self._t0

    def _end(
        self,
        seq: int,
        t: float,
        kind: Kind,
        session_id: int | None,
        *,
        data: bytes = b"",
        result: bool | None = None,
        detail: str = "",
        error: str = "",
        peer_port: int | None = None,
        peer_since: int = 0,
        passed: object = None,
    ) -> None:
        with self._cond:
            self._seq += 1
            event = TraceEvent(
                seq=seq,
                end_seq=self._seq if kind in CALLS else seq,
                kind=kind,
                session_id=session_id,
                data=data,
                result=result,
                thread=threading.current_thread().name,
                t=t,
                detail=detail,
                error=error,
                peer_port=peer_port,
                peer_since=peer_since,
                passed=passed,
            )
            self.events.append(event)
            ix = self.index
            if session_id is not None:
                if kind is Kind.RECV:
                    ix.received.setdefault(session_id, bytearray()).extend(data)
                elif kind is Kind.RELEASE:
                    ix.released.add(session_id)
                elif kind is Kind.SEND and result:
                    ix.accepted_sends.setdefault(session_id, []).append(data)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds (checked under the recorder's lock) or `timeout`
        seconds pass; return whether it held. Woken by every new event, so no polling."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def trace(self) -> list[TraceEvent]:
        """The events so far, in the order their calls began."""
        with self._cond:
            return sorted(self.events, key=lambda e: e.seq)

    def session_of(self, peer_port: int, after_seq: int = 0) -> int | None:
        """The id of the connection of the test peer that began connecting from `peer_port`
        at `after_seq` (see `session_of_port`), or None if it has no on_connect yet."""
        with self._cond:
            return session_of_port(self.index.by_port.get(peer_port, ()), after_seq)

    def peer_of(self, session_id: int) -> object:
        """The `peer` argument of on_connect(session_id), as the implementation passed it."""
        with self._cond:
            return self.index.peer_of.get(session_id)

    def received(self, session_id: int) -> bytes:
        with self._cond:
            return bytes(self.index.received.get(session_id, b""))

    def accepted(self, session_id: int) -> bytes:
        """The concatenated data of every send() to `session_id` that returned True."""
        with self._cond:
            return b"".join(self.index.accepted_sends.get(session_id, []))

    def is_released(self, session_id: int) -> bool:
        with self._cond:
            return session_id in self.index.released


def session_of_port(connects: Iterable[tuple[int, int | None]], since: int) -> int | None:
    """Which session a client port belongs to: the one of the test peer that began connecting
    from it at seq `since` -- the first connection from that port whose on_connect began after
    `since`. `connects`: the port's (seq of on_connect, session id), in order. A port alone
    does not say it: the kernel reuses a port once its connection is gone, so an earlier
    connection from the same port may be in the trace (S1 churns many)."""
    for seq, sid in connects:
        if seq > since:
            return sid
    return None


def _port_of(peer: tuple[str, int] | None) -> int | None:
    if peer is None:
        return None
    try:
        return int(peer[1])
    except (IndexError, TypeError, ValueError):
        return None
