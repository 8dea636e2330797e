"""S2 and S12 checker: every ending has a reason of its own, and no thread dies.

`check_causes` accepts a release (or a reset its peer sees) after its peer's FIN or RST,
a disconnect() of its id that returned True, one of its own callbacks raising, or the test
calling stop(); anything else is the signature of a late completion or an error landing on
the wrong session (S2). A thread of the implementation dying of an exception is S12.
"""

from __future__ import annotations

from conformance._checker import check_causes, check_trace
from conformance._trace import Kind

from ._build import TraceBuilder, clauses


def test_s2_release_after_the_peers_fin_is_explained() -> None:
    b = TraceBuilder()
    b.connect(1)
    b.release(1)  # after a FIN note (the builder's default cause)
    assert check_causes(b.events) == []


def test_s2_release_with_no_cause_is_reported() -> None:
    b = TraceBuilder()
    b.connect(1)
    b.release(1, cause=False)
    (v,) = check_causes(b.events)
    assert (v.clause, v.session_id) == ("S2", 1)
    assert "none of these" in v.actual


def test_s2_another_sessions_fin_explains_nothing() -> None:
    """The late-completion signature: session 1's peer closed, session 2 was released."""
    b = TraceBuilder()
    b.connect(1)
    b.connect(2)
    b.release(1)
    b.release(2, cause=False)
    assert [v.session_id for v in check_causes(b.events)] == [2]


def test_s2_a_cause_after_the_release_does_not_count() -> None:
    b = TraceBuilder()
    b.connect(1)
    b.release(1, cause=False)
    b.fin(1)
    assert clauses(check_causes(b.events)) == ["S2"]


def test_s2_disconnect_explains_only_when_it_returned_true() -> None:
    ok, refused = TraceBuilder(), TraceBuilder()
    for b, result in ((ok, True), (refused, False)):
        b.connect(1)
        b.disconnect(1, result=result)
        b.release(1, cause=False)
    assert check_causes(ok.events) == []
    assert clauses(check_causes(refused.events)) == ["S2"]


def test_s2_a_raising_callback_explains_its_own_release() -> None:
    b = TraceBuilder()
    b.connect(1)
    event = b.recv(1, b"x")
    b.events[-1] = type(event)(**{**{f: getattr(event, f) for f in event.__slots__},
                                  "error": "Boom: on purpose"})
    b.release(1, cause=False)
    assert check_causes(b.events) == []


def test_s2_stop_explains_every_later_release() -> None:
    b = TraceBuilder()
    for sid in (1, 2, 3):
        b.connect(sid)
    b.stop()
    for sid in (1, 2, 3):
        b.release(sid, cause=False)
    assert check_causes(b.events) == []


def test_s2_a_peer_note_made_before_the_id_was_known_counts_by_port() -> None:
    b = TraceBuilder()
    b.connect(5, port=41000)
    b.peer("peer :41000 sends RST", Kind.PEER_CLOSE, peer_port=41000)
    b.release(5, cause=False)
    assert check_causes(b.events) == []


def test_s2_an_unexplained_release_fails_the_whole_trace_check() -> None:
    b = TraceBuilder()
    b.connect(1)
    b.release(1, cause=False)
    assert "S2" in clauses(check_trace(b.events, [], final=True))
    assert all(e.kind not in (Kind.PEER_CLOSE, Kind.STOP) for e in b.events)


def test_s12_a_thread_that_died_is_reported_even_after_stop() -> None:
    b = TraceBuilder()
    b.connect(1)
    b.stop()
    b.add(Kind.THREAD_DIED, None, detail="thread worker-0 died", error="ValueError: oops")
    b.release(1, cause=False)
    (v,) = check_causes(b.events)
    assert v.clause == "S12" and "worker-0 died" in v.actual and "ValueError" in v.actual


def test_s2_a_peer_that_sees_a_reset_needs_a_cause() -> None:
    """The late completion's first symptom: an innocent peer reads ECONNRESET."""
    b = TraceBuilder()
    b.connect(1)
    b.connect(2)
    b.release(1)
    b.peer("peer read error ConnectionResetError after 0 bytes", Kind.PEER_SAW_RESET,
           session_id=2)
    (v,) = check_causes(b.events)
    assert (v.clause, v.session_id) == ("S2", 2) and "reset" in v.actual


def test_s2_a_reset_the_peer_asked_for_is_explained() -> None:
    b = TraceBuilder()
    b.connect(1)
    b.peer("peer :40001 sends RST", Kind.PEER_CLOSE, session_id=1)
    b.peer("peer send failed: ConnectionResetError", Kind.PEER_SAW_RESET, session_id=1)
    b.release(1, cause=False)
    assert check_causes(b.events) == []
