"""How S1-S4 violations are shown: render_timeline and the ConformanceFailure verdict."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conformance._checker import (
    ConformanceFailure,
    Stream,
    Violation,
    check_trace,
    render_timeline,
)
from conformance._clauses import CLAUSES
from conformance._trace import Kind

from ._build import TraceBuilder


def block_of(text: str, sid: int | str) -> list[str]:
    """The lines of the `session <sid>:` block (header excluded) of a rendered timeline."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"session {sid}:"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        body.append(line)
    return body


def two_sessions_with_notes() -> TraceBuilder:
    b = TraceBuilder()
    b.peer("peer A connects", peer_port=50001)  # before its id is known
    b.note("test begins")
    b.connect(7, port=50001)
    b.recv(7, b"hi")
    b.connect(8, port=50002)
    b.peer("peer B sends 3 bytes", peer_port=50002)
    b.peer("peer ? sends", peer_port=59999)  # no CONNECT had this port
    b.release(7, cause=False)  # rendering does not judge S12's causes
    return b


def test_s2_timeline_groups_events_by_session_in_seq_order() -> None:
    """S2 timeline: one block per session, each with only its own events, in seq order."""
    text = render_timeline(two_sessions_with_notes().events)
    seven = block_of(text, 7)
    eight = block_of(text, 8)
    assert [line.split(None, 2)[2] for line in seven] == [
        "peer A connects",
        "on_connect(7, ('127.0.0.1', 50001))",
        "on_recv(7, 2 bytes b'hi')",
        "on_release(7)",
    ]
    assert [line.split(None, 2)[2] for line in eight] == [
        "on_connect(8, ('127.0.0.1', 50002))",
        "peer B sends 3 bytes",
    ]
    assert text.index("session 7:") < text.index("session 8:")


def test_s2_timeline_places_a_port_note_under_the_session_whose_connect_had_that_port() -> None:
    """S2 timeline: a peer's event with peer_port and no id goes under the session whose
    CONNECT had that port, even when it came before the CONNECT; it is shown as the peer's."""
    text = render_timeline(two_sessions_with_notes().events)
    assert any("peer A connects" in line for line in block_of(text, 7))
    assert not any("peer A connects" in line for line in block_of(text, 8))
    line = next(x for x in block_of(text, 7) if "peer A connects" in x)
    assert line.split()[1] == "peer"


def test_s2_timeline_puts_unmatched_notes_in_the_test_block() -> None:
    """S2 timeline: events with no id and an unknown (or no) port go to the closing 'test:'."""
    text = render_timeline(two_sessions_with_notes().events)
    lines = text.splitlines()
    test_at = lines.index("test:")
    tail = lines[test_at + 1 :]
    assert [line.split(None, 2)[2] for line in tail] == ["test begins", "peer ? sends"]
    assert not any("peer ? sends" in x for x in block_of(text, 7) + block_of(text, 8))


def test_s2_s12_timeline_names_who_did_each_thing_in_its_own_words() -> None:
    """S2, S12 timeline: a peer's action is the peer's, stop() and a remark are the test's, an
    injected fault and a thread's death are the thread's that met them; a fault reads
    'fault: ...' and a death names what killed the thread."""
    b = TraceBuilder()
    b.connect(1)
    b.peer("peer :40001 sends RST", Kind.PEER_CLOSE, session_id=1)
    b.add(Kind.FAULT_RESET, 1, detail="send #2 of session 1: reset", thread="select-loop")
    b.add(Kind.FAULT, None, detail="accept #1: emfile", thread="select-loop")
    b.stop()
    b.add(Kind.THREAD_DIED, None, detail="thread worker-0 died", error="ValueError: oops",
          thread="worker-0")
    text = render_timeline(b.events)
    who_what = [line.split(None, 2)[1:] for line in block_of(text, 1)]
    assert who_what[1:] == [["peer", "peer :40001 sends RST"],
                            ["select-loop", "fault: send #2 of session 1: reset"]]
    tail = text.splitlines()[text.splitlines().index("test:") + 1 :]
    assert [line.split(None, 2)[1:] for line in tail] == [
        ["select-loop", "fault: accept #1: emfile"],
        ["test", "the test calls stop()"],
        ["worker-0", "thread worker-0 died of ValueError: oops"],
    ]


def test_s2_a_peer_event_belongs_to_the_connection_its_peer_made_not_an_earlier_one() -> None:
    """S2 timeline: a port is reused, so a peer's event made before its id was known goes to
    the first connection from that port after the peer began connecting, not to an earlier
    connection of the same port (session_of_port)."""
    b = TraceBuilder()
    b.connect(1, port=50001)
    b.release(1)
    began = b.peer("peer :50001 connecting", peer_port=50001)
    b.events[-1] = replace(began, peer_since=began.seq)
    b.connect(2, port=50001)
    assert any("connecting" in line for line in block_of(render_timeline(b.events), 2))
    assert not any("connecting" in line for line in block_of(render_timeline(b.events), 1))


def test_s2_timeline_with_chosen_sessions_shows_only_those() -> None:
    """S2 timeline: given session_ids, only those blocks appear, an unknown one as
    '(no events)', and no 'test:' block."""
    text = render_timeline(two_sessions_with_notes().events, [8, 99])
    assert "session 7:" not in text
    assert "session 8:" in text
    assert "session 99: (no events)" in text
    assert "test:" not in text


def test_s2_timeline_truncates_long_sessions() -> None:
    """S2 timeline: a session longer than max_lines shows its first and last events and says
    how many were left out."""
    b = TraceBuilder()
    b.connect(1)
    for i in range(28):
        b.recv(1, b"chunk%02d" % i)
    b.release(1, cause=False)  # 30 events in all
    text = render_timeline(b.events, max_lines=24)
    body = block_of(text, 1)
    assert len(body) == 25  # 12 + the "... more" line + 12
    assert body[12].strip() == "... 6 more events ..."
    assert "on_connect(1," in body[0]
    assert "on_release(1)" in body[-1]
    assert "chunk10" in body[11] and "chunk17" in body[13]
    assert "chunk11" not in text and "chunk16" not in text


def test_s2_timeline_does_not_truncate_a_session_of_exactly_max_lines() -> None:
    """S2 timeline: max_lines events are all shown, with no '... more' line."""
    b = TraceBuilder()
    b.connect(1)
    for _ in range(22):
        b.recv(1, b"x")
    b.release(1, cause=False)  # 24 events
    text = render_timeline(b.events, max_lines=24)
    assert len(block_of(text, 1)) == 24
    assert "more events" not in text


@pytest.mark.parametrize(("events", "max_lines"), [(8, 5), (9, 4), (3, 1)])
def test_s2_timeline_truncation_count_matches_what_is_hidden(events: int, max_lines: int) -> None:
    """S2 timeline: the '... N more events ...' count equals the events left out, also for odd
    max_lines."""
    b = TraceBuilder()
    for i in range(events):
        b.note(f"event-{i:02d}", session_id=1)
    body = block_of(render_timeline(b.events, max_lines=max_lines), 1)
    shown = [line for line in body if "event-" in line]
    [more] = [line for line in body if "more events" in line]
    hidden = int(more.split()[1])
    assert hidden == events - len(shown)
    assert len(shown) == max_lines


def test_s2_timeline_limits_the_number_of_sessions() -> None:
    """S2 timeline: at most max_sessions blocks, then a count of the rest."""
    b = TraceBuilder()
    for sid in range(1, 7):
        b.session(sid)
    text = render_timeline(b.events, max_sessions=4)
    assert [line for line in text.splitlines() if line.startswith("session")] == [
        "session 1:",
        "session 2:",
        "session 3:",
        "session 4:",
    ]
    assert text.splitlines()[-1] == "(2 more sessions not shown)"


def test_s2_timeline_shows_session_zero() -> None:
    """S1/S2 timeline: id 0 is a valid id and gets its own block."""
    b = TraceBuilder()
    b.session(0, b"z")
    assert "on_recv(0, 1 bytes b'z')" in "\n".join(block_of(render_timeline(b.events), 0))


# ---- ConformanceFailure


@pytest.mark.parametrize("cid", sorted(CLAUSES))
def test_conformance_failure_names_clause_title_sentence_expected_actual(cid: str) -> None:
    """S1-S13: the verdict quotes the clause id, its title and its sentence from
    _clauses.CLAUSES, then 'expected:' and 'actual:'."""
    exc = ConformanceFailure(cid, "the right thing", "the wrong thing", "session 1:\n  x")
    c = CLAUSES[cid]
    text = str(exc)
    assert text.splitlines()[0] == f"{cid} {c.title}: {c.sentence}"
    assert "  expected: the right thing" in text
    assert "  actual:   the wrong thing" in text
    assert text.endswith("session 1:\n  x")
    assert exc.clause == cid
    assert exc.clauses == [cid]
    assert isinstance(exc, AssertionError)


def test_s2_conformance_failure_from_violations_includes_the_timeline() -> None:
    """S2: from_violations uses the first violation and renders the timeline of the sessions
    the violations name."""
    b = TraceBuilder()
    b.session(1, b"fine")
    b.session(2, b"never released", release=False)
    found = check_trace(b.events, final=True)
    exc = ConformanceFailure.from_violations(found, b.events)
    text = str(exc)
    assert exc.clause == "S2"
    assert "S2" in text and CLAUSES["S2"].title in text and CLAUSES["S2"].sentence in text
    assert "expected: on_release(2) before stop() returned" in text
    assert "actual:   it was never called" in text
    assert "timeline (seconds since the scenario began, thread, event):" in text
    assert "session 2:" in text
    assert "on_recv(2, 14 bytes b'never released')" in text
    assert "session 1:" not in text  # only the sessions involved


def test_s1_conformance_failure_without_session_ids_shows_every_session() -> None:
    """S1: an invalid id has no session_id in its Violation; the timeline shows everything."""
    b = TraceBuilder()
    b.session(1)
    b.connect(-1)
    found = check_trace(b.events)
    assert [v.clause for v in found] == ["S1"]
    text = str(ConformanceFailure.from_violations(found, b.events))
    assert text.startswith(f"S1 identity: {CLAUSES['S1'].sentence}")
    assert "session 1:" in text and "session -1:" in text


def test_s3_s4_conformance_failure_lists_further_violations() -> None:
    """S3, S4: the other violations follow as 'also' lines; clauses lists each clause once."""
    b = TraceBuilder()
    b.connect(1)
    b.recv(1, b"")
    b.send(1, b"out")
    b.release(1)
    stream = Stream(1, peer_sent=b"in", inbound_complete=True, outbound_complete=True)
    found = check_trace(b.events, [stream])
    assert [v.clause for v in found] == ["S3", "S3", "S4"]
    exc = ConformanceFailure.from_violations(found, b.events)
    assert exc.clause == "S3"
    assert exc.clauses == ["S3", "S4"]
    text = str(exc)
    assert f"  also {found[1]}" in text
    assert f"  also {found[2]}" in text


def test_s2_conformance_failure_caps_the_also_lines() -> None:
    """S2: more than five further violations are summarised in one line."""
    also = [Violation("S2", "e", f"a{i}", i) for i in range(8)]
    text = str(ConformanceFailure("S2", "x", "y", "", also))
    assert text.count("  also S2: expected e; actual: a") == 5
    assert "  ... and 3 more violations" in text
    assert "timeline" not in text  # no timeline given, no header


def test_s1_violation_str_names_the_clause() -> None:
    """S1: a Violation reads 'S1: expected ...; actual: ...'."""
    v = Violation("S1", "an int in [0, 2**64)", "session id -1")
    assert str(v) == "S1: expected an int in [0, 2**64); actual: session id -1"
