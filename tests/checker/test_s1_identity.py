"""The checker's S1 identity rules, fed synthetic traces."""

from __future__ import annotations

from typing import Any

import pytest

from conformance._checker import check_identity, check_trace
from conformance._trace import Kind

from ._build import TraceBuilder, clauses


@pytest.mark.parametrize("sid", [0, 1, 7, 2**63, 2**64 - 1])
def test_s1_ids_in_range_are_accepted(sid: int) -> None:
    """S1: any int in [0, 2**64) is a valid id, including 0 and 2**64 - 1."""
    b = TraceBuilder()
    b.connect(sid)
    assert check_identity(b.events) == []


@pytest.mark.parametrize(
    "sid",
    [2**64, 2**64 + 5, 2**100],
    ids=["2**64", "2**64+5", "2**100"],
)
def test_s1_id_out_of_range_is_reported(sid: int) -> None:
    """S1: an id of 2**64 or more does not fit 64 bits."""
    b = TraceBuilder()
    b.connect(sid)
    [v] = check_identity(b.events)
    assert v.clause == "S1"
    assert v.expected == "an int in [0, 2**64)"
    assert repr(sid) in v.actual
    assert v.session_id is None


@pytest.mark.parametrize("sid", [-1, -(2**63)])
def test_s1_negative_id_is_reported(sid: int) -> None:
    """S1: negative ids are outside [0, 2**64)."""
    b = TraceBuilder()
    b.connect(sid)
    assert clauses(check_identity(b.events)) == ["S1"]


@pytest.mark.parametrize("sid", ["7", 7.0, None, b"\x07", (7,)], ids=repr)
def test_s1_non_int_id_is_reported(sid: Any) -> None:
    """S1: ids are ints: a str, float, None, bytes or tuple is reported."""
    b = TraceBuilder()
    b.connect(sid)
    [v] = check_identity(b.events)
    assert v.clause == "S1"
    assert v.actual == f"session id {sid!r}"


@pytest.mark.parametrize("sid", [True, False])
def test_s1_bool_id_is_reported(sid: bool) -> None:
    """S1: bool is an int subclass, but True/False are not session ids."""
    b = TraceBuilder()
    b.connect(sid)
    [v] = check_identity(b.events)
    assert v.clause == "S1"
    assert repr(sid) in v.actual


def test_s1_same_id_connected_twice_is_reported() -> None:
    """S1: an id given to two connections (the socket-handle-reuse bug) is reported once."""
    b = TraceBuilder()
    b.session(5, b"a")
    b.session(5, b"b")
    [v] = check_identity(b.events)
    assert v.clause == "S1"
    assert v.session_id == 5
    assert "5" in v.expected
    assert "socket handle" in v.actual


def test_s1_an_id_connected_three_times_is_one_violation() -> None:
    """S1: a reused id is reported once, however often it is reused."""
    b = TraceBuilder()
    for _ in range(3):
        b.session(9)
    assert clauses(check_identity(b.events)) == ["S1"]


def test_s1_each_reused_id_gets_its_own_violation() -> None:
    """S1: two different reused ids give two violations, naming each id."""
    b = TraceBuilder()
    for sid in (1, 2, 1, 2, 3):
        b.connect(sid)
    found = check_identity(b.events)
    assert clauses(found) == ["S1", "S1"]
    assert [v.session_id for v in found] == [1, 2]


def test_s1_only_on_connect_issues_ids() -> None:
    """S1: recv/release/send/disconnect/notes with odd ids are not S1's business (S2's)."""
    b = TraceBuilder()
    b.connect(1)
    b.recv(1, b"x")
    b.send(1, b"y")
    b.send(-1, b"y", result=False)
    b.disconnect(2**64, result=False)
    b.note("peer closed", session_id=1)
    b.release(1)
    assert check_identity(b.events) == []


def test_s1_distinct_ids_are_clean() -> None:
    """S1: many sessions with distinct ids give no violation."""
    b = TraceBuilder()
    for sid in range(1, 50):
        b.session(sid, b"hi")
    assert check_identity(b.events) == []


def test_s1_check_trace_reports_s1_first() -> None:
    """S1: check_trace lists violations in clause order, S1 before S2."""
    b = TraceBuilder()
    b.recv(3, b"x")  # S2: no on_connect first
    b.connect(-4)  # S1
    found = check_trace(b.events)
    assert clauses(found) == ["S1", "S2"]


def test_s1_events_other_than_connect_are_ignored_even_with_reused_numbers() -> None:
    """S1: a send() to an id after its release does not count as a second connection."""
    b = TraceBuilder()
    b.session(4)
    b.send(4, b"late", result=False)
    b.add(Kind.DISCONNECT, 4, result=False)
    assert check_identity(b.events) == []
