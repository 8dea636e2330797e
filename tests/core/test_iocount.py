"""The IOCount release rule (impls/_core/lifecycle.py): a proactor's session is released
exactly when it is closing and no operation is outstanding -- never earlier, never twice
(S2, S8). `Seen.io_idle` is the IOCount being zero."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impls._core import Action, CloseReason, IoCount, Lifecycle, LifecycleError, Seen


def step(life: Lifecycle, io: IoCount) -> Action:
    return life.step(Seen(queued=False, io_idle=io.idle), 0.0)


def test_s8_not_released_while_an_operation_is_outstanding():
    life, io = Lifecycle(), IoCount()
    io.started()
    life.close(CloseReason.PEER_EOF, 0.0, 1.0)
    assert step(life, io) is Action.SEND_FIN
    assert step(life, io) is Action.WAIT
    io.finished()
    assert step(life, io) is Action.RELEASE


def test_s2_not_released_while_open():
    life, io = Lifecycle(), IoCount()
    life.connected()
    assert io.idle and step(life, io) is Action.WAIT


def test_s2_count_cannot_go_below_zero():
    with pytest.raises(LifecycleError):
        IoCount().finished()


@given(st.lists(st.sampled_from(["start", "finish", "close"]), max_size=40))
def test_s2_s8_exactly_one_release_for_any_interleaving(steps):
    """Replay any order of issues, completions and a close, stepping after each: at most one
    release, and only once nothing is outstanding."""
    life, io = Lifecycle(), IoCount()
    io.started()  # the accept handler's own reference
    releases = 0
    for op in [*steps, "close"]:
        if op == "start" and life.state.name != "RELEASED":
            io.started()
        elif op == "finish" and not io.idle:
            io.finished()
        elif op == "close":
            life.close(CloseReason.DISCONNECT, 0.0, 1.0)
        while (action := step(life, io)) is not Action.WAIT:
            if action is Action.RELEASE:
                assert io.idle
                releases += 1
    while not io.idle:
        io.finished()
        if step(life, io) is Action.RELEASE:
            releases += 1
    assert releases == 1
