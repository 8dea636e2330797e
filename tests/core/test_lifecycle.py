"""S2, S5, S9, S11 in the core: the session lifecycle as a transition table."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impls._core import CloseReason, Lifecycle, LifecycleError, SessionState
from impls._core.lifecycle import IGNORED, TRANSITIONS, Event

S = SessionState
E = Event

# The diagram of lifecycle.py's docstring, written out independently of the module's tables.
EXPECTED_TRANSITIONS = {
    (S.CONNECTING, E.CONNECTED): S.OPEN,
    (S.CONNECTING, E.CLOSE): S.CLOSING,
    (S.OPEN, E.CLOSE): S.CLOSING,
    (S.CLOSING, E.RELEASE): S.RELEASED,
}
EXPECTED_IGNORED = {
    (S.CLOSING, E.CONNECTED),
    (S.CLOSING, E.CLOSE),
    (S.RELEASED, E.CLOSE),
}


def in_state(state: SessionState) -> Lifecycle:
    """A Lifecycle brought to `state` through its public methods only."""
    lc = Lifecycle()
    if state is S.OPEN:
        assert lc.connected()
    elif state is S.CLOSING:
        assert lc.close(CloseReason.PEER_EOF)
    elif state is S.RELEASED:
        assert lc.close(CloseReason.PEER_EOF)
        lc.release()
    assert lc.state is state
    return lc


def fire(lc: Lifecycle, event: Event, reason: CloseReason = CloseReason.DISCONNECT) -> object:
    if event is E.CONNECTED:
        return lc.connected()
    if event is E.CLOSE:
        return lc.close(reason)
    lc.release()
    return None


def test_s2_transition_table_is_the_documented_diagram() -> None:
    """S2: TRANSITIONS and IGNORED are exactly the documented diagram, and disjoint."""
    assert dict(TRANSITIONS) == EXPECTED_TRANSITIONS
    assert set(IGNORED) == EXPECTED_IGNORED
    assert not set(TRANSITIONS) & set(IGNORED)


def test_s2_released_is_terminal_and_connecting_is_initial() -> None:
    """S2: nothing leads back to CONNECTING, and nothing leaves RELEASED."""
    assert Lifecycle().state is S.CONNECTING
    assert Lifecycle().reason is None
    assert S.CONNECTING not in TRANSITIONS.values()
    assert not [k for k in TRANSITIONS if k[0] is S.RELEASED]


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(SessionState, Event)), ids=lambda x: x.name
)
def test_s2_every_state_event_pair_transitions_is_ignored_or_raises(
    state: SessionState, event: Event
) -> None:
    """S2: each (state, event) either transitions per TRANSITIONS, is ignored per IGNORED
    (returns False, state unchanged) or raises LifecycleError leaving the state unchanged."""
    lc = in_state(state)
    reason_before = lc.reason
    key = (state, event)
    if key in TRANSITIONS:
        result = fire(lc, event)
        assert lc.state is TRANSITIONS[key]
        assert result is (None if event is E.RELEASE else True)
    elif key in IGNORED:
        assert fire(lc, event) is False
        assert lc.state is state
        assert lc.reason is reason_before
    else:
        with pytest.raises(LifecycleError, match=f"{event.name}.*{state.name}"):
            fire(lc, event)
        assert lc.state is state
        assert lc.reason is reason_before


@pytest.mark.parametrize("reason", list(CloseReason), ids=lambda r: r.name)
def test_s9_close_returns_true_exactly_once_and_first_reason_wins(reason: CloseReason) -> None:
    """S9: disconnect() returns True once: close() is True the first time only, and a later
    reason never replaces the first."""
    lc = Lifecycle()
    assert lc.close(reason)
    assert lc.reason is reason
    for other in CloseReason:
        assert lc.close(other) is False
    assert lc.reason is reason
    lc.release()
    assert lc.close(CloseReason.STOP) is False
    assert lc.reason is reason
    assert lc.state is S.RELEASED


def test_s2_release_happens_exactly_once() -> None:
    """S2: on_release exactly once: a second release() is a model bug and raises."""
    lc = in_state(S.CLOSING)
    lc.release()
    with pytest.raises(LifecycleError):
        lc.release()
    assert lc.state is S.RELEASED


def test_s2_release_requires_close_first() -> None:
    """S2: a session cannot be released without first being closed."""
    for state in (S.CONNECTING, S.OPEN):
        lc = in_state(state)
        with pytest.raises(LifecycleError):
            lc.release()
        assert lc.state is state


def test_s2_close_from_inside_on_connect_makes_connected_return_false() -> None:
    """S2: on_connect called disconnect(): connected() is ignored and returns False."""
    lc = Lifecycle()
    assert lc.accepts_calls  # send() is accepted from inside on_connect
    assert lc.close(CloseReason.DISCONNECT)
    assert lc.connected() is False
    assert lc.state is S.CLOSING


@pytest.mark.parametrize(
    ("state", "accepts", "closing"),
    [
        (S.CONNECTING, True, False),
        (S.OPEN, True, False),
        (S.CLOSING, False, True),
        (S.RELEASED, False, False),
    ],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_s8_s9_accepts_calls_only_before_closing(
    state: SessionState, accepts: bool, closing: bool
) -> None:
    """S8, S9: send() and disconnect() are accepted in CONNECTING and OPEN only."""
    lc = in_state(state)
    assert lc.accepts_calls is accepts
    assert lc.closing is closing


def test_s5_only_a_reset_skips_the_flush() -> None:
    """S5, S9: every close reason flushes queued bytes except a connection reset."""
    assert {r for r in CloseReason if not r.flushes} == {CloseReason.RESET}


def test_s2_repr_names_state_and_reason() -> None:
    """S2: the repr shows the state, and the close reason once there is one."""
    lc = Lifecycle()
    assert repr(lc) == "<Lifecycle CONNECTING>"
    lc.close(CloseReason.STOP)
    assert repr(lc) == "<Lifecycle CLOSING (STOP)>"


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Event)), st.sampled_from(list(CloseReason))),
        max_size=20,
    )
)
def test_s2_s9_any_event_sequence_follows_the_table(
    events: list[tuple[Event, CloseReason]],
) -> None:
    """S2, S9: for any sequence of events, each step obeys TRANSITIONS / IGNORED / raises with
    no change; close() returns True at most once; the reason is the first close's reason;
    states only move forward."""
    order = [S.CONNECTING, S.OPEN, S.CLOSING, S.RELEASED]
    lc = Lifecycle()
    close_true = 0
    first_reason: CloseReason | None = None
    for event, reason in events:
        before = lc.state
        key = (before, event)
        try:
            result = fire(lc, event, reason)
        except LifecycleError:
            assert key not in TRANSITIONS
            assert key not in IGNORED
            assert lc.state is before
            continue
        if key in TRANSITIONS:
            assert lc.state is TRANSITIONS[key]
            if event is E.CLOSE:
                assert result is True
                close_true += 1
                first_reason = first_reason or reason
        else:
            assert key in IGNORED
            assert result is False
            assert lc.state is before
        assert order.index(lc.state) >= order.index(before)
        assert lc.reason is first_reason
    assert close_true <= 1
    assert (close_true == 1) == (lc.state in (S.CLOSING, S.RELEASED))
