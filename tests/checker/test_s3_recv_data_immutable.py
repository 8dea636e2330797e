"""The checker's S3 rule on the object on_recv was passed: bytes, the same value for ever.

The Recorder copies every on_recv argument at once (`TraceEvent.data`) and keeps the object
itself (`TraceEvent.passed`); these traces stand for what it records when an implementation
lends the application its receive buffer, without any socket.
"""

from __future__ import annotations

import dataclasses

from conformance._checker import Stream, check_streams, check_trace

from ._build import TraceBuilder, clauses


def passing(b: TraceBuilder, sid: int, passed: object) -> None:
    """on_recv(sid, passed), recorded as the Recorder does: a copy, and the object."""
    event = b.recv(sid, bytes(passed))  # type: ignore[call-overload]
    b.events[-1] = dataclasses.replace(event, passed=passed)


def test_s3_bytes_and_bytes_subclasses_pass() -> None:
    """S3: bytes cannot change, and neither can a subclass of bytes."""

    class Message(bytes):
        pass

    b = TraceBuilder()
    b.connect(1)
    passing(b, 1, b"hello ")
    passing(b, 1, Message(b"world"))
    b.release(1)
    assert check_trace(b.events, [Stream(1, b"hello world", True)], final=True) == []


def test_s3_a_reused_buffer_is_reported_with_the_bytes_that_changed() -> None:
    """S3: a view of a buffer the implementation reused: the type, and what changed where."""
    ring = bytearray(b"hello world")
    b = TraceBuilder()
    b.connect(1)
    passing(b, 1, memoryview(ring)[:5])
    passing(b, 1, memoryview(ring)[5:])
    ring[:5] = b"HELLO"  # the next recv writes over the ring after on_recv returned
    b.release(1)
    [v] = check_streams(b.events, [Stream(1, b"hello world", True)])
    assert v.clause == "S3" and v.session_id == 1
    assert v.expected == "on_recv(1, data) to pass bytes, the same value for ever " \
                         "(the application may keep it)"
    assert v.actual.startswith("a memoryview, not bytes, whose bytes changed after on_recv "
                               "returned")
    assert "differ first at byte 0" in v.actual and "b'HELLO'" in v.actual


def test_s3_a_mutable_argument_is_reported_even_unchanged() -> None:
    """S3: a bytearray breaks the promise even if nothing changed it during the scenario;
    the concatenation itself (the copies taken at delivery) is still judged as usual."""
    b = TraceBuilder()
    b.connect(1)
    passing(b, 1, bytearray(b"abc"))
    b.release(1)
    [v] = check_streams(b.events, [Stream(1, b"abc", True)])
    assert v.actual == ("a bytearray, not bytes (its bytes had not changed by the end, but "
                        "nothing stops them changing)")


def test_s3_a_released_view_is_reported() -> None:
    """S3: a memoryview the implementation released after on_recv can no longer be read."""
    view = memoryview(bytearray(b"abc"))
    b = TraceBuilder()
    b.connect(1)
    passing(b, 1, view)
    view.release()
    [v] = check_streams(b.events, [])
    assert v.actual.startswith("a memoryview, not bytes, unreadable after on_recv returned")


def test_s3_one_report_per_session() -> None:
    """S3: every on_recv of a lending server is wrong; each session is reported once."""
    b = TraceBuilder()
    for sid in (1, 2):
        b.connect(sid)
        for chunk in (b"a", b"b", b"c"):
            passing(b, sid, bytearray(chunk))
    assert clauses(check_streams(b.events, [])) == ["S3", "S3"]
    assert [v.session_id for v in check_streams(b.events, [])] == [1, 2]


def test_s3_the_recorder_keeps_the_object_and_gives_the_application_a_copy() -> None:
    """The Recorder: `passed` is the very object, `data` and the hook's argument a copy, so
    a buffer reused later changes neither the trace's bytes nor what the application saw."""
    from conformance._trace import Kind, Recorder

    seen: list[object] = []
    rec = Recorder(on_recv=lambda _rec, _sid, data: seen.append(data))
    ring = bytearray(b"abc")
    view = memoryview(ring)
    rec.on_recv(1, view)  # type: ignore[arg-type]
    ring[:] = b"xyz"
    [event] = [e for e in rec.trace() if e.kind is Kind.RECV]
    assert event.passed is view
    assert event.data == b"abc" and seen == [b"abc"] and type(seen[0]) is bytes
    assert clauses(check_streams(rec.trace(), [])) == ["S3"]


def test_s3_the_report_shows_bytes_that_changed_if_any_did() -> None:
    """S3: of a session's lent buffers, the report shows one whose bytes changed, the
    clearest evidence, even if an unchanged one came first."""
    ring = bytearray(b"abcd")
    b = TraceBuilder()
    b.connect(1)
    passing(b, 1, memoryview(ring)[:2])
    passing(b, 1, memoryview(ring)[2:])
    ring[2:] = b"XY"
    [v] = check_streams(b.events, [])
    assert "changed after on_recv returned" in v.actual and "b'XY'" in v.actual
