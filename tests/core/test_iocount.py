"""The IOCount release rule (impls/_core/lifecycle.py): release exactly when CLOSING and no
operation is outstanding -- never earlier, never twice (S2, S8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impls._core import CloseReason, IoCount, Lifecycle, LifecycleError, ready_to_release


def test_s8_not_ready_while_an_operation_is_outstanding():
    life, io = Lifecycle(), IoCount()
    io.started()
    life.close(CloseReason.PEER_EOF)
    assert not ready_to_release(life, io)
    io.finished()
    assert ready_to_release(life, io)


def test_s2_not_ready_while_open():
    life, io = Lifecycle(), IoCount()
    life.connected()
    assert io.idle and not ready_to_release(life, io)


def test_s2_count_cannot_go_below_zero():
    with pytest.raises(LifecycleError):
        IoCount().finished()


@given(st.lists(st.sampled_from(["start", "finish", "close"]), max_size=40))
def test_s2_s8_exactly_one_release_for_any_interleaving(steps):
    """Replay any order of issues, completions and a close, releasing whenever the rule says:
    at most one release, and only once nothing is outstanding."""
    life, io = Lifecycle(), IoCount()
    io.started()  # the accept handler's own reference
    releases = 0
    for step in [*steps, "close"]:
        if step == "start" and life.state.name != "RELEASED":
            io.started()
        elif step == "finish" and not io.idle:
            io.finished()
        elif step == "close":
            life.close(CloseReason.DISCONNECT)
        if ready_to_release(life, io):
            life.release()
            releases += 1
    while not io.idle:
        io.finished()
        if ready_to_release(life, io):
            life.release()
            releases += 1
    assert releases == 1
