"""The whole life of a session as one transition table, and the step function that ends it
(S2, S5, S9, S11, S12).

Rule 1: every decision about a session's life lives in this file: when it opens, when it
starts closing, when its FIN goes out, when it is aborted, when it is released.
Rule 2: this file does not know which I/O model calls it, and does no I/O: a model tells it
what it observed (`Seen`) and the time, and gets back what to do (`Action`). The five models
differ in *how* they perform an action (shutdown, SO_LINGER 0, CancelIoEx, a cancel scope),
never in *when*.

    OPENING --CONNECTED--> OPEN --CLOSE--> FLUSHING --DRAINED--> FIN_SENT --IO_IDLE--> RELEASED
       \\_______________CLOSE______________/   \\--DEADLINE--> ABORTING --IO_IDLE--/

- OPENING: accepted, on_connect not yet returned. send() is already accepted, so an
  application can greet from inside on_connect.
- OPEN: on_recv may be delivered; send() and disconnect() are accepted.
- FLUSHING: someone decided the session ends (peer FIN, disconnect(), stop(), a raising
  callback, a reset: `CloseReason`). send() and disconnect() return False from here on. The
  bytes already accepted still go out, until the linger deadline (S5, S9).
- FIN_SENT: every accepted byte was handed to the kernel, then FIN (shutdown(SHUT_WR)).
- ABORTING: the deadline passed with bytes still queued, or the connection was reset: RST
  (SO_LINGER 0), the queue is dropped.
- RELEASED: nothing uses the socket any more; it is closed and on_release is called -- by
  whoever performed RELEASE, which `step` returns exactly once.

Events come from two places. The model fires CONNECTED and CLOSE (`connected()`, `close()`),
and a timer of its own may say the deadline passed (`expire()`). DRAINED, DEADLINE and IO_IDLE
are decided by `decide`, the pure step function, from what the model observed and the time.
A reset while flushing leaves nothing to wait for, so it makes the deadline now (S12).

Events that race harmlessly (a peer FIN arriving while disconnect() is closing the session)
are in `IGNORED` and change nothing; anything else not in the table raises LifecycleError and
changes nothing, because it is a bug in the model.
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple, Protocol, TypeGuard, TypeVar

from .send_queue import SendQueue

__all__ = [
    "ACTIONS",
    "IGNORED",
    "TRANSITIONS",
    "Action",
    "CloseReason",
    "Event",
    "IoCount",
    "Lifecycle",
    "LifecycleError",
    "Mechanics",
    "Seen",
    "SessionState",
    "admit_send",
    "advance",
    "decide",
    "next_timeout",
]


class SessionState(enum.Enum):
    OPENING = "opening"
    OPEN = "open"
    FLUSHING = "flushing"
    FIN_SENT = "FIN sent"
    ABORTING = "aborting"
    RELEASED = "released"

    # Every send() and every step looks a state up in a set or a dict. Enum's own __hash__
    # is Python code (hash of the name): a tenth of a session's life under churn. A member
    # is a singleton compared by identity, so the identity hash is the same contract, in C.
    __hash__ = object.__hash__


class Event(enum.Enum):
    CONNECTED = "connected"  # on_connect returned
    CLOSE = "close"  # the session must end (see CloseReason)
    DRAINED = "queue drained"  # nothing accepted is left to hand to the kernel
    DEADLINE = "deadline passed"  # linger is over (or a reset: nothing to wait for)
    IO_IDLE = "IO idle"  # nothing outstanding uses the socket (the proactor's IOCount is 0)

    __hash__ = object.__hash__  # as SessionState's


class Action(enum.Enum):
    """What `step` tells the model to do now."""

    WAIT = "wait"  # nothing yet: come back on the next observation or at `wake_at`
    SEND_FIN = "send FIN"  # shutdown(SHUT_WR) after the last accepted byte
    ABORT = "abort"  # RST: SO_LINGER 0, drop the queue, stop what is in flight
    RELEASE = "release"  # close the socket, forget the id, call on_release


class CloseReason(enum.Enum):
    """Why a session ends; decides whether queued bytes are flushed first."""

    PEER_EOF = "peer closed (recv returned 0)"
    DISCONNECT = "disconnect() called"
    STOP = "server stopping"
    RESET = "connection reset or failed"
    HANDLER_ERROR = "a handler callback raised"

    @property
    def flushes(self) -> bool:
        """True if the close is graceful: queued bytes go out (within linger), then FIN."""
        return self is not CloseReason.RESET


TRANSITIONS: dict[tuple[SessionState, Event], SessionState] = {
    (SessionState.OPENING, Event.CONNECTED): SessionState.OPEN,
    (SessionState.OPENING, Event.CLOSE): SessionState.FLUSHING,
    (SessionState.OPEN, Event.CLOSE): SessionState.FLUSHING,
    (SessionState.FLUSHING, Event.DRAINED): SessionState.FIN_SENT,
    (SessionState.FLUSHING, Event.DEADLINE): SessionState.ABORTING,
    (SessionState.FIN_SENT, Event.IO_IDLE): SessionState.RELEASED,
    (SessionState.ABORTING, Event.IO_IDLE): SessionState.RELEASED,
}

# The action that performs each decided transition; the model's own events need none.
ACTIONS: dict[Event, Action] = {
    Event.DRAINED: Action.SEND_FIN,
    Event.DEADLINE: Action.ABORT,
    Event.IO_IDLE: Action.RELEASE,
}

_CLOSING = frozenset({SessionState.FLUSHING, SessionState.FIN_SENT, SessionState.ABORTING})

IGNORED: frozenset[tuple[SessionState, Event]] = frozenset(
    # on_connect called disconnect() or raised: the session is already closing.
    {(state, Event.CONNECTED) for state in _CLOSING}
    # Two reasons to close raced (FIN vs disconnect()); the first one wins.
    | {(state, Event.CLOSE) for state in (*_CLOSING, SessionState.RELEASED)}
)

# Whether the application may still call send() and disconnect() in each state (S8, S9).
_ACCEPTS_CALLS = {SessionState.OPENING, SessionState.OPEN}


class Seen(NamedTuple):
    """What a model observed about a closing session, for `decide`."""

    queued: bool  # accepted bytes not yet handed to the kernel (a write in flight counts)
    io_idle: bool = True  # nothing outstanding uses the socket: the proactor's IOCount is 0,
    # the blocking model's writer thread ended; a readiness loop has nothing outstanding


def decide(state: SessionState, deadline: float, seen: Seen, now: float) -> Event | None:
    """The pure step function: the event `seen` at `now` makes happen, or None (wait).

    A drained queue wins over a passed deadline: every accepted byte is in the kernel, and a
    FIN delivers what RST would throw away (S9).
    """
    if state is SessionState.FLUSHING:
        if not seen.queued:
            return Event.DRAINED
        return Event.DEADLINE if now >= deadline else None
    if state in (SessionState.FIN_SENT, SessionState.ABORTING):
        return Event.IO_IDLE if seen.io_idle else None
    return None


class IoCount:
    """The IOCount of the course notes (docs/models/iocp.md): operations issued, not completed.

    The release rule of a completion model: a session is released when it is closing *and*
    its count is zero -- never earlier (a late completion would touch freed memory, or the
    next session that reuses it) and never twice (exactly one caller sees both hold, under
    the session's lock, and is told RELEASE). It is `Seen.io_idle`.
    """

    __slots__ = ("outstanding",)

    def __init__(self) -> None:
        self.outstanding = 0

    def started(self) -> None:
        """An operation was issued (RecvPost, SendPost, AcceptEx)."""
        self.outstanding += 1

    def finished(self) -> None:
        """Its completion was dequeued and handled."""
        if self.outstanding == 0:
            raise LifecycleError("IOCount would go below zero: a completion handled twice")
        self.outstanding -= 1

    @property
    def idle(self) -> bool:
        return self.outstanding == 0

    def __repr__(self) -> str:
        return f"<IoCount {self.outstanding}>"


class _Session(Protocol):
    life: Lifecycle
    queue: SendQueue


S = TypeVar("S", bound=_Session)


def admit_send(s: S | None, data: bytes | bytearray | memoryview) -> TypeGuard[S]:
    """send()'s rule, the same in every model: the id names a session (S8) that still accepts
    calls (S8, S9, S11) and whose queue takes all of `data` (S7). If so, `data` is queued."""
    return s is not None and s.life.accepts_calls and s.queue.offer(data)


def next_timeout(deadlines: list[float | None], now: float) -> float | None:
    """How long a loop may sleep: until the earliest deadline (0 if one passed), or None."""
    due = [d for d in deadlines if d is not None]
    return max(0.0, min(due) - now) if due else None


class LifecycleError(RuntimeError):
    """A model fired an event its session's state does not allow: a bug in the model."""


class Lifecycle:
    """One session's state; every change goes through `TRANSITIONS`. Not thread-safe."""

    __slots__ = ("deadline", "reason", "state")

    def __init__(self) -> None:
        self.state = SessionState.OPENING
        self.reason: CloseReason | None = None
        self.deadline = math.inf  # while FLUSHING: abort if bytes are still queued by then

    def _fire(self, event: Event) -> bool:
        key = (self.state, event)
        new_state = TRANSITIONS.get(key)
        if new_state is not None:
            self.state = new_state
            return True
        if key in IGNORED:
            return False
        raise LifecycleError(f"{event.name} is not allowed in state {self.state.name}")

    @property
    def accepts_calls(self) -> bool:
        """True while send() and disconnect() may succeed for this session."""
        return self.state in _ACCEPTS_CALLS

    @property
    def closing(self) -> bool:
        """FLUSHING, FIN_SENT or ABORTING: decided to end, not yet released."""
        return self.state in _CLOSING

    @property
    def aborting(self) -> bool:
        """The abort was decided: nothing more may be written to the socket (S9)."""
        return self.state is SessionState.ABORTING

    @property
    def wake_at(self) -> float | None:
        """The time a loop must look at this session again even if nothing happens."""
        return self.deadline if self.state is SessionState.FLUSHING else None

    def connected(self) -> bool:
        """on_connect returned. False if the session was closed from inside it."""
        return self._fire(Event.CONNECTED)

    def close(self, reason: CloseReason, now: float, linger: float) -> bool:
        """Start ending the session at `now`: flush for at most `linger` seconds. True for the
        first call only; a later reason is ignored -- except a reset, which cannot be flushed
        past, so it ends the wait at once (S12)."""
        first = self._fire(Event.CLOSE)
        if first:
            self.reason = reason
            self.deadline = now + linger
        if reason is CloseReason.RESET:
            self.expire()
        return first

    def expire(self) -> None:
        """The deadline is over now (a reset, or the model's own linger timer fired)."""
        if self.state is SessionState.FLUSHING:
            self.deadline = -math.inf

    def step(self, seen: Seen, now: float) -> Action:
        """Decide with `decide`, take the transition, and say which action performs it."""
        event = decide(self.state, self.deadline, seen, now)
        if event is None:
            return Action.WAIT
        self._fire(event)
        return ACTIONS[event]

    def __repr__(self) -> str:
        why = f" ({self.reason.name})" if self.reason else ""
        return f"<Lifecycle {self.state.name}{why}>"


T_contra = TypeVar("T_contra", contravariant=True)


class Mechanics(Protocol[T_contra]):
    """What every model implements, under these names, to perform the core's decisions
    (docs/core.md, "The names every model uses"). Each is called with the model's lock held."""

    def _seen(self, s: T_contra, /) -> Seen: ...
    def _send_fin(self, s: T_contra, /) -> None: ...
    def _abort(self, s: T_contra, /) -> None: ...
    def _release(self, s: T_contra, /) -> None: ...


class _Living(Protocol):
    life: Lifecycle


L = TypeVar("L", bound=_Living)


def advance(model: Mechanics[L], s: L, now: float) -> bool:
    """Ask the core what the closing session `s` needs at `now` and have `model` perform it,
    until the answer is WAIT. True if this call released it: the caller then calls on_release,
    without holding a lock (S13)."""
    while (action := s.life.step(model._seen(s), now)) is not Action.WAIT:
        if action is Action.RELEASE:
            model._release(s)
            return True
        if action is Action.SEND_FIN:
            model._send_fin(s)
        else:
            model._abort(s)
    return False
