"""The session lifecycle as a transition table (S2, S5, S9, S11).

Rule 1: every lifecycle transition of a session lives in this file, in `TRANSITIONS`.
Rule 2: this file does not know which I/O model calls it -- the five models must not get
different rules. They differ in *who* fires an event (a reader thread, a loop, a completion),
never in what the event does.

    CONNECTING --CONNECTED--> OPEN --CLOSE--> CLOSING --RELEASE--> RELEASED
         \\___________________CLOSE__________/

- CONNECTING: accepted, on_connect not yet returned. send() is already accepted, so an
  application can greet from inside on_connect.
- OPEN: on_recv may be delivered; send() and disconnect() are accepted.
- CLOSING: someone decided the session ends (peer FIN, disconnect(), stop(), reset, a raising
  callback). send() and disconnect() return False from here on; queued bytes are flushed
  unless the reason is an abort.
- RELEASED: the socket is closed and on_release was called -- by whoever fired RELEASE, which
  the table lets happen exactly once.

Events that race harmlessly (a peer FIN arriving while disconnect() is closing the session)
are in `IGNORED` and change nothing; anything else not in the table raises LifecycleError and
changes nothing, because it is a bug in the model.
"""

from __future__ import annotations

import enum
from typing import Protocol, TypeGuard, TypeVar

from .send_queue import SendQueue

__all__ = [
    "IGNORED",
    "TRANSITIONS",
    "CloseReason",
    "Event",
    "IoCount",
    "Lifecycle",
    "LifecycleError",
    "SessionState",
    "admit_send",
    "ready_to_release",
]


class SessionState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    RELEASED = "released"


class Event(enum.Enum):
    CONNECTED = "connected"  # on_connect returned
    CLOSE = "close"  # the session must end (see CloseReason)
    RELEASE = "release"  # socket closed; the caller now calls on_release


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
    (SessionState.CONNECTING, Event.CONNECTED): SessionState.OPEN,
    (SessionState.CONNECTING, Event.CLOSE): SessionState.CLOSING,
    (SessionState.OPEN, Event.CLOSE): SessionState.CLOSING,
    (SessionState.CLOSING, Event.RELEASE): SessionState.RELEASED,
}

IGNORED: frozenset[tuple[SessionState, Event]] = frozenset(
    {
        # on_connect called disconnect() or raised: the session is already closing.
        (SessionState.CLOSING, Event.CONNECTED),
        # Two reasons to close raced (FIN vs disconnect()); the first one wins.
        (SessionState.CLOSING, Event.CLOSE),
        (SessionState.RELEASED, Event.CLOSE),
    }
)

# Whether the application may still call send() and disconnect() in each state (S8, S9).
_ACCEPTS_CALLS = {SessionState.CONNECTING, SessionState.OPEN}


class IoCount:
    """The IOCount of the notes: overlapped operations issued and not yet completed.

    The release rule of a completion model: a session is released when it is CLOSING *and*
    its count is zero -- never earlier (a late completion would touch freed memory, or the
    next session that reuses it) and never twice (exactly one caller sees both hold, under
    the session's lock, and fires RELEASE).
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


def ready_to_release(life: Lifecycle, io: IoCount) -> bool:
    """The completion model's release rule: CLOSING and nothing outstanding."""
    return life.closing and io.idle


class LifecycleError(RuntimeError):
    """A model fired an event its session's state does not allow: a bug in the model."""


class Lifecycle:
    """One session's state; every change goes through `TRANSITIONS`. Not thread-safe."""

    __slots__ = ("reason", "state")

    def __init__(self) -> None:
        self.state = SessionState.CONNECTING
        self.reason: CloseReason | None = None

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
        return self.state is SessionState.CLOSING

    def connected(self) -> bool:
        """on_connect returned. False if the session was closed from inside it."""
        return self._fire(Event.CONNECTED)

    def close(self, reason: CloseReason) -> bool:
        """Start ending the session. True for the first call only; later reasons are ignored."""
        if self._fire(Event.CLOSE):
            self.reason = reason
            return True
        return False

    def release(self) -> None:
        """The socket is closed: the caller, and only the caller, now calls on_release."""
        self._fire(Event.RELEASE)

    def __repr__(self) -> str:
        why = f" ({self.reason.name})" if self.reason else ""
        return f"<Lifecycle {self.state.name}{why}>"
