"""The checker's S2 lifecycle rules, fed synthetic traces."""

from __future__ import annotations

import random

import pytest

from conformance._checker import check_lifecycle, check_trace
from conformance._trace import Kind

from ._build import TraceBuilder, at, clauses


def test_s2_clean_session_is_accepted() -> None:
    """S2: on_connect, on_recv*, on_release once, no overlap: no violation, final or not."""
    b = TraceBuilder()
    b.session(1, b"a", b"b", b"c")
    b.session(2)
    assert check_lifecycle(b.events, final=False) == []
    assert check_lifecycle(b.events, final=True) == []


def test_s2_recv_before_connect_is_reported() -> None:
    """S2: on_recv before on_connect for that id."""
    b = TraceBuilder()
    b.recv(3, b"early")
    b.connect(3)
    b.release(3)
    [v] = check_lifecycle(b.events, final=True)
    assert v.clause == "S2"
    assert v.session_id == 3
    assert "on_connect(3) before any other callback" in v.expected
    assert "on_recv(3, 5 bytes b'early')" in v.actual


def test_s2_release_without_connect_is_reported() -> None:
    """S2: on_release for an id that never had on_connect."""
    b = TraceBuilder()
    b.release(8)
    found = check_lifecycle(b.events, final=False)
    assert clauses(found) == ["S2"]
    assert "on_release(8)" in found[0].actual


def test_s2_release_twice_is_reported() -> None:
    """S2: on_release exactly once: a second one is a violation."""
    b = TraceBuilder()
    b.session(4)
    b.release(4)
    [v] = check_lifecycle(b.events, final=True)
    assert v.clause == "S2"
    assert v.session_id == 4
    assert v.expected == "on_release(4) exactly once"
    assert v.actual == "it was called 2 times"


@pytest.mark.parametrize("late", [Kind.RECV, Kind.CONNECT], ids=["on_recv", "on_connect"])
def test_s2_callback_after_release_is_reported(late: Kind) -> None:
    """S2: no callback names an id after its on_release returned.

    (A second on_connect makes the id "reused": S1 reports it and S2 skips the id.)
    """
    b = TraceBuilder()
    b.session(6, b"x")
    b.add(late, 6, data=b"late" if late is Kind.RECV else b"")
    found = check_lifecycle(b.events, final=True)
    if late is Kind.RECV:
        [v] = found
        assert v.clause == "S2"
        assert v.expected == "no callback for 6 after on_release(6) returned"
        assert v.actual == "on_recv(6, 4 bytes b'late') came after it"
    else:
        assert found == []
        assert clauses(check_trace(b.events, final=True)) == ["S1"]


def test_s2_callback_overlapping_release_is_an_overlap_not_late() -> None:
    """S2: a callback that began while on_release was running overlaps it."""
    events = [
        at(1, 2, Kind.CONNECT, 1),
        at(3, 6, Kind.RELEASE, 1),
        at(4, 5, Kind.RECV, 1, b"x"),
    ]
    found = check_lifecycle(events, final=True)
    assert clauses(found) == ["S2"]
    assert "never overlap" in found[0].expected


def test_s2_sends_and_notes_after_release_are_not_callbacks() -> None:
    """S2 concerns callbacks only: send()/disconnect() after release are S8's business."""
    b = TraceBuilder()
    b.session(2)
    b.send(2, b"late", result=False)
    b.disconnect(2, result=False)
    b.note("peer saw EOF", session_id=2)
    assert check_lifecycle(b.events, final=True) == []


def test_s2_overlapping_callbacks_for_one_id_are_reported() -> None:
    """S2: on_recv [4, 7] and on_recv [5, 6] for one id overlap in time."""
    events = [
        at(1, 2, Kind.CONNECT, 1, thread="a"),
        at(4, 7, Kind.RECV, 1, b"one", thread="a"),
        at(5, 6, Kind.RECV, 1, b"two", thread="b"),
        at(8, 9, Kind.RELEASE, 1, thread="a"),
    ]
    [v] = check_lifecycle(events, final=True)
    assert v.clause == "S2"
    assert v.session_id == 1
    assert v.expected == "callbacks for 1 never overlap in time"
    assert "on_recv(1, 3 bytes b'two') [thread b] began while" in v.actual
    assert "on_recv(1, 3 bytes b'one') [thread a] was still running" in v.actual


def test_s2_partially_overlapping_connect_and_recv_are_reported() -> None:
    """S2: on_recv starting before on_connect returned is an overlap."""
    events = [at(1, 4, Kind.CONNECT, 1), at(3, 5, Kind.RECV, 1, b"x"), at(6, 7, Kind.RELEASE, 1)]
    assert clauses(check_lifecycle(events, final=True)) == ["S2"]


def test_s2_overlap_is_reported_once_per_id() -> None:
    """S2: several overlaps for one id give one overlap violation."""
    events = [
        at(1, 20, Kind.CONNECT, 1),
        at(2, 3, Kind.RECV, 1, b"a"),
        at(4, 5, Kind.RECV, 1, b"b"),
        at(6, 7, Kind.RECV, 1, b"c"),
        at(21, 22, Kind.RELEASE, 1),
    ]
    assert clauses(check_lifecycle(events, final=True)) == ["S2"]


def test_s2_disjoint_intervals_do_not_overlap() -> None:
    """S2: [1,2], [3,4], [5,6] for one id are sequential, not overlapping."""
    events = [at(1, 2, Kind.CONNECT, 1), at(3, 4, Kind.RECV, 1, b"a"), at(5, 6, Kind.RELEASE, 1)]
    assert check_lifecycle(events, final=True) == []


def test_s2_callbacks_of_different_ids_may_overlap() -> None:
    """S2: only callbacks for one id must not overlap; different ids run in parallel."""
    events = [
        at(1, 10, Kind.CONNECT, 1),
        at(2, 9, Kind.CONNECT, 2),
        at(3, 8, Kind.RECV, 3, b"x"),  # id 3: no on_connect -> S2 for 3 only
        at(11, 12, Kind.RELEASE, 1),
        at(11, 13, Kind.RELEASE, 2),
    ]
    found = check_lifecycle(events, final=False)
    assert [(v.clause, v.session_id) for v in found] == [("S2", 3)]


def test_s2_missing_release_is_reported_when_final() -> None:
    """S2: after stop() (final=True) every connected id must have been released."""
    b = TraceBuilder()
    b.session(1, b"x", release=False)
    b.session(2)
    [v] = check_lifecycle(b.events, final=True)
    assert v.clause == "S2"
    assert v.session_id == 1
    assert v.expected == "on_release(1) before stop() returned"
    assert v.actual == "it was never called"


def test_s2_missing_release_is_not_reported_when_not_final() -> None:
    """S2: mid-scenario (final=False) a live session need not be released yet."""
    b = TraceBuilder()
    b.session(1, b"x", release=False)
    assert check_lifecycle(b.events, final=False) == []
    assert check_trace(b.events) == []  # final defaults to False


def test_s2_reused_ids_are_skipped() -> None:
    """S2: an id connected twice is S1's to report; S2 does not judge its two lives."""
    b = TraceBuilder()
    b.session(5, b"a")
    b.connect(5)
    b.recv(5, b"b")  # second life, never released
    assert check_lifecycle(b.events, final=True) == []
    assert clauses(check_trace(b.events, final=True)) == ["S1"]


def test_s2_non_int_ids_are_left_to_s1() -> None:
    """S2 ignores ids that are not ints (S1 reports them on on_connect)."""
    b = TraceBuilder()
    b.connect("x")
    b.recv("x", b"data")
    assert check_lifecycle(b.events, final=True) == []
    assert clauses(check_trace(b.events, final=True)) == ["S1"]


def test_s2_events_are_judged_in_seq_order_not_list_order() -> None:
    """S2: the checker sorts by seq, so a shuffled clean trace stays clean."""
    b = TraceBuilder()
    for sid in range(1, 6):
        b.session(sid, b"a", b"b")
    shuffled = list(b.events)
    random.Random(1234).shuffle(shuffled)
    assert check_lifecycle(shuffled, final=True) == []


def test_s2_several_problems_for_one_id_are_each_reported() -> None:
    """S2: one id breaking two S2 rules (on_recv first, released twice) gets one violation
    for each rule."""
    b = TraceBuilder()
    b.recv(7, b"x")
    b.connect(7)
    b.release(7)
    b.release(7)
    found = check_lifecycle(b.events, final=True)
    assert clauses(found) == ["S2", "S2"]
    assert "before any other callback" in found[0].expected
    assert found[1].expected == "on_release(7) exactly once"
