"""S2, S5, S9, S11, S12 in the core: a session's whole life as a transition table, and the
pure step function that decides its ending -- every transition, without a socket."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impls._core import (
    Action,
    CloseReason,
    Lifecycle,
    LifecycleError,
    Seen,
    SessionState,
    advance,
    next_timeout,
)
from impls._core.lifecycle import ACTIONS, IGNORED, TRANSITIONS, Event, decide

S = SessionState
E = Event
LINGER = 2.0

# The diagram of lifecycle.py's docstring, written out independently of the module's tables.
EXPECTED_TRANSITIONS = {
    (S.OPENING, E.CONNECTED): S.OPEN,
    (S.OPENING, E.CLOSE): S.FLUSHING,
    (S.OPEN, E.CLOSE): S.FLUSHING,
    (S.FLUSHING, E.DRAINED): S.FIN_SENT,
    (S.FLUSHING, E.DEADLINE): S.ABORTING,
    (S.FIN_SENT, E.IO_IDLE): S.RELEASED,
    (S.ABORTING, E.IO_IDLE): S.RELEASED,
}
EXPECTED_IGNORED = {
    (S.FLUSHING, E.CONNECTED),
    (S.FIN_SENT, E.CONNECTED),
    (S.ABORTING, E.CONNECTED),
    (S.FLUSHING, E.CLOSE),
    (S.FIN_SENT, E.CLOSE),
    (S.ABORTING, E.CLOSE),
    (S.RELEASED, E.CLOSE),
}
# What a model must observe (queued, io_idle) for `decide` to pick each decided event.
SEEN_FOR = {
    E.DRAINED: Seen(queued=False, io_idle=False),
    E.DEADLINE: Seen(queued=True, io_idle=False),
    E.IO_IDLE: Seen(queued=False, io_idle=True),
}
ORDER = [S.OPENING, S.OPEN, S.FLUSHING, S.FIN_SENT, S.ABORTING, S.RELEASED]


def in_state(state: SessionState) -> Lifecycle:
    """A Lifecycle brought to `state` through its public methods only (closed at t=0)."""
    lc = Lifecycle()
    if state is S.OPEN:
        assert lc.connected()
    elif state is not S.OPENING:
        assert lc.close(CloseReason.PEER_EOF, 0.0, LINGER)
        if state is S.FIN_SENT:
            assert lc.step(Seen(queued=False, io_idle=False), 0.0) is Action.SEND_FIN
        elif state is S.ABORTING:
            assert lc.step(Seen(queued=True, io_idle=False), LINGER) is Action.ABORT
        elif state is S.RELEASED:
            assert lc.step(Seen(queued=False), 0.0) is Action.SEND_FIN
            assert lc.step(Seen(queued=False), 0.0) is Action.RELEASE
    assert lc.state is state
    return lc


def fire(lc: Lifecycle, event: Event, reason: CloseReason = CloseReason.DISCONNECT) -> object:
    """Fire `event` the way a model does: its own events by call, the rest through step."""
    if event is E.CONNECTED:
        return lc.connected()
    if event is E.CLOSE:
        return lc.close(reason, 0.0, LINGER)
    return lc.step(SEEN_FOR[event], math.inf if event is E.DEADLINE else 0.0)


def test_s2_transition_table_is_the_documented_diagram() -> None:
    """S2: TRANSITIONS and IGNORED are exactly the documented diagram, and disjoint; every
    decided transition has the action that performs it."""
    assert dict(TRANSITIONS) == EXPECTED_TRANSITIONS
    assert set(IGNORED) == EXPECTED_IGNORED
    assert not set(TRANSITIONS) & set(IGNORED)
    assert ACTIONS == {E.DRAINED: Action.SEND_FIN, E.DEADLINE: Action.ABORT,
                       E.IO_IDLE: Action.RELEASE}


def test_s2_released_is_terminal_and_opening_is_initial() -> None:
    """S2: nothing leads back to OPENING, and nothing leaves RELEASED."""
    assert Lifecycle().state is S.OPENING
    assert Lifecycle().reason is None
    assert S.OPENING not in TRANSITIONS.values()
    assert not [k for k in TRANSITIONS if k[0] is S.RELEASED]


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(SessionState, Event)), ids=lambda x: x.name
)
def test_s2_every_state_event_pair_transitions_is_ignored_or_raises(
    state: SessionState, event: Event
) -> None:
    """S2: each (state, event) transitions per TRANSITIONS, is ignored per IGNORED (False,
    state unchanged), raises LifecycleError leaving the state unchanged (a model's own event
    that the state forbids) -- or, for an event the core decides, is simply never decided."""
    lc = in_state(state)
    reason_before = lc.reason
    key = (state, event)
    if key in TRANSITIONS:
        result = fire(lc, event)
        assert lc.state is TRANSITIONS[key]
        assert result is ACTIONS.get(event, True)
    elif key in IGNORED:
        assert fire(lc, event) is False
        assert lc.state is state
        assert lc.reason is reason_before
    elif event in ACTIONS:
        for seen, now in itertools.product(SEEN_FOR.values(), (0.0, math.inf)):
            assert decide(state, lc.deadline, seen, now) is not event
    else:
        with pytest.raises(LifecycleError, match=f"{event.name}.*{state.name}"):
            fire(lc, event)
        assert lc.state is state
        assert lc.reason is reason_before


@pytest.mark.parametrize(
    ("state", "seen", "now", "expected"),
    [
        (S.FLUSHING, Seen(queued=False), 0.0, E.DRAINED),
        (S.FLUSHING, Seen(queued=False), 9.0, E.DRAINED),  # a drained queue wins: FIN, not RST
        (S.FLUSHING, Seen(queued=True), 0.9, None),  # still flushing within linger
        (S.FLUSHING, Seen(queued=True), 1.0, E.DEADLINE),  # the deadline itself has passed
        (S.FLUSHING, Seen(queued=True, io_idle=False), 1.5, E.DEADLINE),
        (S.FIN_SENT, Seen(queued=False, io_idle=False), 9.0, None),  # a completion to come
        (S.FIN_SENT, Seen(queued=False, io_idle=True), 0.0, E.IO_IDLE),
        (S.ABORTING, Seen(queued=True, io_idle=False), 9.0, None),
        (S.ABORTING, Seen(queued=True, io_idle=True), 0.0, E.IO_IDLE),  # dropped, not flushed
    ],
)
def test_s5_s9_decide_is_the_documented_rule(
    state: SessionState, seen: Seen, now: float, expected: Event | None
) -> None:
    """S5, S9: the pure step function with a deadline at t=1: FIN once drained, RST once the
    deadline passed with bytes queued, release once nothing is outstanding."""
    assert decide(state, 1.0, seen, now) is expected


@pytest.mark.parametrize("state", [S.OPENING, S.OPEN, S.RELEASED], ids=lambda s: s.name)
@pytest.mark.parametrize("queued", [False, True])
@pytest.mark.parametrize("io_idle", [False, True])
def test_s2_nothing_is_decided_outside_closing(
    state: SessionState, queued: bool, io_idle: bool
) -> None:
    """S2, S8: an open session is never ended by the step function, and a released one is
    never released again, whatever is observed and however late."""
    assert decide(state, 0.0, Seen(queued, io_idle), math.inf) is None


@pytest.mark.parametrize("reason", list(CloseReason), ids=lambda r: r.name)
def test_s9_close_returns_true_exactly_once_and_first_reason_wins(reason: CloseReason) -> None:
    """S9: disconnect() returns True once: close() is True the first time only, and a later
    reason never replaces the first."""
    lc = Lifecycle()
    assert lc.close(reason, 0.0, LINGER)
    assert lc.reason is reason
    for other in CloseReason:
        assert lc.close(other, 0.5, LINGER) is False
    assert lc.reason is reason
    assert lc.step(Seen(queued=False), 1.0) is Action.SEND_FIN
    assert lc.close(CloseReason.STOP, 1.0, LINGER) is False
    assert lc.reason is reason
    assert lc.state is S.FIN_SENT


def test_s9_the_linger_deadline_is_counted_from_the_close() -> None:
    """S9: closed at t=10 with linger 2, a session still flushing waits until t=12, then
    aborts; a later reason does not move the deadline."""
    lc = Lifecycle()
    lc.close(CloseReason.DISCONNECT, 10.0, LINGER)
    lc.close(CloseReason.STOP, 11.0, LINGER)
    assert lc.wake_at == 12.0
    assert lc.step(Seen(queued=True), 11.99) is Action.WAIT
    assert lc.step(Seen(queued=True), 12.0) is Action.ABORT
    assert lc.state is S.ABORTING and lc.aborting and lc.wake_at is None


def test_s12_a_reset_while_flushing_ends_the_wait_at_once() -> None:
    """S12: the first reason (disconnect) says flush; a reset after it cannot be flushed past,
    so the session aborts at once instead of at the end of linger."""
    lc = Lifecycle()
    lc.close(CloseReason.DISCONNECT, 0.0, LINGER)
    assert lc.close(CloseReason.RESET, 0.1, LINGER) is False  # the first reason still wins
    assert lc.reason is CloseReason.DISCONNECT
    assert lc.step(Seen(queued=True), 0.1) is Action.ABORT


def test_s9_a_reset_does_not_wait_for_linger() -> None:
    """S9: closed by a reset, queued bytes are dropped at once (RST); with nothing queued,
    FIN (the peer is gone: either is harmless, and FIN loses nothing)."""
    queued = Lifecycle()
    queued.close(CloseReason.RESET, 0.0, LINGER)
    assert queued.step(Seen(queued=True), 0.0) is Action.ABORT
    drained = Lifecycle()
    drained.close(CloseReason.RESET, 0.0, LINGER)
    assert drained.step(Seen(queued=False), 0.0) is Action.SEND_FIN


@pytest.mark.parametrize("state", list(SessionState), ids=lambda s: s.name)
def test_s9_expire_only_ends_a_flush(state: SessionState) -> None:
    """S9: a model's own linger timer firing aborts a session still flushing, and changes
    nothing in any other state (a stale timer is harmless)."""
    lc = in_state(state)
    lc.expire()
    if state is S.FLUSHING:
        assert lc.step(Seen(queued=True, io_idle=False), 0.0) is Action.ABORT
    else:
        assert lc.state is state
        assert lc.step(Seen(queued=True, io_idle=False), 0.0) is Action.WAIT


def test_s2_release_happens_exactly_once() -> None:
    """S2: on_release exactly once: RELEASE is returned once, then WAIT forever."""
    lc = in_state(S.FIN_SENT)
    assert lc.step(Seen(queued=False), 0.0) is Action.RELEASE
    assert lc.step(Seen(queued=False), 0.0) is Action.WAIT
    assert lc.state is S.RELEASED


def test_s2_close_from_inside_on_connect_makes_connected_return_false() -> None:
    """S2: on_connect called disconnect(): connected() is ignored and returns False, also
    after a proactor already sent the FIN (the handler still holds its IOCount)."""
    lc = Lifecycle()
    assert lc.accepts_calls  # send() is accepted from inside on_connect
    assert lc.close(CloseReason.DISCONNECT, 0.0, LINGER)
    assert lc.step(Seen(queued=False, io_idle=False), 0.0) is Action.SEND_FIN
    assert lc.connected() is False
    assert lc.state is S.FIN_SENT


@pytest.mark.parametrize(
    ("state", "accepts", "closing"),
    [
        (S.OPENING, True, False),
        (S.OPEN, True, False),
        (S.FLUSHING, False, True),
        (S.FIN_SENT, False, True),
        (S.ABORTING, False, True),
        (S.RELEASED, False, False),
    ],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_s8_s9_accepts_calls_only_before_closing(
    state: SessionState, accepts: bool, closing: bool
) -> None:
    """S8, S9: send() and disconnect() are accepted in OPENING and OPEN only; only FLUSHING
    has a deadline to wake for; only ABORTING forbids further writes."""
    lc = in_state(state)
    assert lc.accepts_calls is accepts
    assert lc.closing is closing
    assert (lc.wake_at is not None) is (state is S.FLUSHING)
    assert lc.aborting is (state is S.ABORTING)


def test_s5_only_a_reset_skips_the_flush() -> None:
    """S5, S9: every close reason flushes queued bytes except a connection reset."""
    assert {r for r in CloseReason if not r.flushes} == {CloseReason.RESET}


def test_s2_repr_names_state_and_reason() -> None:
    """S2: the repr shows the state, and the close reason once there is one."""
    lc = Lifecycle()
    assert repr(lc) == "<Lifecycle OPENING>"
    lc.close(CloseReason.STOP, 0.0, LINGER)
    assert repr(lc) == "<Lifecycle FLUSHING (STOP)>"


def test_s6_next_timeout_is_the_earliest_deadline() -> None:
    """S6, S9: a loop sleeps until the earliest deadline (0 once one passed), or forever."""
    assert next_timeout([], 5.0) is None
    assert next_timeout([None, None], 5.0) is None
    assert next_timeout([None, 7.0, 6.0], 5.0) == 1.0
    assert next_timeout([-math.inf, 7.0], 5.0) == 0.0


class FakeModel:
    """The mechanics of a model, recorded: what `advance` had it perform, in order."""

    def __init__(self, queued: bool, io_idle: bool = True) -> None:
        self.queued, self.io_idle = queued, io_idle
        self.done: list[str] = []

    def _seen(self, s: FakeSession) -> Seen:
        return Seen(self.queued, self.io_idle)

    def _send_fin(self, s: FakeSession) -> None:
        self.done.append("send_fin")

    def _abort(self, s: FakeSession) -> None:
        self.done.append("abort")

    def _release(self, s: FakeSession) -> None:
        self.done.append("release")


class FakeSession:
    def __init__(self) -> None:
        self.life = Lifecycle()
        self.life.connected()


def test_s5_advance_a_readiness_model_flushes_fins_and_releases_in_one_pass() -> None:
    """S5: nothing outstanding in a readiness loop: a drained session is FIN'd and released
    in the same pass, and only once."""
    model, s = FakeModel(queued=False), FakeSession()
    s.life.close(CloseReason.PEER_EOF, 0.0, LINGER)
    assert advance(model, s, 0.0) is True
    assert advance(model, s, 0.0) is False
    assert model.done == ["send_fin", "release"]


def test_s9_advance_waits_within_linger_then_aborts() -> None:
    """S9: bytes still queued: nothing happens before the deadline, RST and release after."""
    model, s = FakeModel(queued=True), FakeSession()
    s.life.close(CloseReason.DISCONNECT, 0.0, LINGER)
    assert advance(model, s, 1.0) is False
    assert model.done == []
    assert advance(model, s, LINGER) is True
    assert model.done == ["abort", "release"]


def test_s8_advance_a_proactor_releases_only_when_the_iocount_is_zero() -> None:
    """S8: a completion still to come (IOCount > 0) holds the release back; the handler that
    brings the count to zero releases."""
    model, s = FakeModel(queued=False, io_idle=False), FakeSession()
    s.life.close(CloseReason.DISCONNECT, 0.0, LINGER)
    assert advance(model, s, 0.0) is False
    assert model.done == ["send_fin"]
    model.io_idle = True
    assert advance(model, s, 0.0) is True
    assert model.done == ["send_fin", "release"]


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("connected")),
            st.tuples(st.just("close"), st.sampled_from(list(CloseReason))),
            st.tuples(st.just("expire")),
            st.tuples(st.just("step"), st.booleans(), st.booleans()),
            st.tuples(st.just("tick"), st.floats(0.0, 3.0)),
        ),
        max_size=30,
    )
)
def test_s2_s9_any_sequence_of_events_and_observations_follows_the_table(
    ops: list[tuple[object, ...]],
) -> None:
    """S2, S9: for any sequence of a model's events and observations: states only move
    forward; close() is True at most once and the first reason stays; at most one of FIN and
    RST, each at most once, and before any release; RELEASE at most once, only when nothing
    is outstanding; an abort only when bytes were queued."""
    lc = Lifecycle()
    now = 0.0
    closes = 0
    first: CloseReason | None = None
    actions: list[Action] = []
    for op in ops:
        before = lc.state
        if op[0] == "connected":
            try:
                lc.connected()
            except LifecycleError:
                assert (before, E.CONNECTED) not in TRANSITIONS | dict.fromkeys(IGNORED)
        elif op[0] == "close":
            assert isinstance(op[1], CloseReason)
            if lc.close(op[1], now, LINGER):
                closes += 1
                first = first or op[1]
        elif op[0] == "expire":
            lc.expire()
        elif op[0] == "tick":
            assert isinstance(op[1], float)
            now += op[1]
        else:
            queued, io_idle = bool(op[1]), bool(op[2])
            action = lc.step(Seen(queued, io_idle), now)
            if action is not Action.WAIT:
                actions.append(action)
            if action is Action.RELEASE:
                assert io_idle
            if action is Action.ABORT:
                assert queued
        assert ORDER.index(lc.state) >= ORDER.index(before) or (
            before is S.ABORTING and lc.state is S.RELEASED)
        assert lc.reason is first
    assert closes <= 1
    assert actions.count(Action.RELEASE) <= 1
    ends = [a for a in actions if a is not Action.RELEASE]
    assert len(ends) <= 1
    assert actions == ends + [Action.RELEASE] * actions.count(Action.RELEASE)
    assert (Action.RELEASE in actions) is (lc.state is S.RELEASED)
