"""The checker's S3 (inbound) and S4 (outbound) byte-stream rules, fed synthetic traces."""

from __future__ import annotations

import pytest

from conformance._checker import Stream, check_streams, check_trace

from ._build import TraceBuilder, clauses

# ---- S3 inbound: on_recv data vs what the peer sent


def inbound(*chunks: bytes, sid: int = 1) -> TraceBuilder:
    b = TraceBuilder()
    b.session(sid, *chunks)
    return b


@pytest.mark.parametrize(
    "chunks",
    [(b"hello world",), (b"hel", b"lo", b" ", b"world"), tuple(bytes([c]) for c in b"hello world")],
    ids=["one", "four", "bytewise"],
)
def test_s3_any_chunking_of_the_exact_bytes_is_accepted(chunks: tuple[bytes, ...]) -> None:
    """S3: the concatenation matters, not the chunking."""
    b = inbound(*chunks)
    s = Stream(1, peer_sent=b"hello world", inbound_complete=True)
    assert check_streams(b.events, [s]) == []


def test_s3_empty_on_recv_is_reported() -> None:
    """S3: on_recv is never called with empty data, even if the bytes otherwise add up."""
    b = inbound(b"ab", b"", b"cd")
    found = check_streams(b.events, [Stream(1, peer_sent=b"abcd", inbound_complete=True)])
    [v] = found
    assert v.clause == "S3"
    assert v.session_id == 1
    assert v.expected == "on_recv never called with empty data"
    assert v.actual == "on_recv(1, b'') was called"


def test_s3_empty_on_recv_is_reported_without_any_stream() -> None:
    """S3: the empty-data rule needs no Stream: it is checked on every on_recv."""
    b = inbound(b"")
    assert clauses(check_streams(b.events, [])) == ["S3"]
    assert clauses(check_trace(b.events)) == ["S3"]


def test_s3_missing_bytes_when_inbound_complete_are_reported() -> None:
    """S3: the peer finished and the session was released: all bytes must have arrived."""
    b = inbound(b"hello")
    [v] = check_streams(b.events, [Stream(1, peer_sent=b"hello world", inbound_complete=True)])
    assert v.clause == "S3"
    assert v.expected == "on_recv data for 1 to be exactly the bytes its peer sent"
    assert v.actual == "only 5 of 11 bytes arrived; missing from byte 5"


def test_s3_nothing_delivered_when_inbound_complete_is_reported() -> None:
    """S3: a complete stream with no on_recv at all is missing every byte."""
    b = inbound()
    [v] = check_streams(b.events, [Stream(1, peer_sent=b"abc", inbound_complete=True)])
    assert v.clause == "S3"
    assert v.actual == "only 0 of 3 bytes arrived; missing from byte 0"


def test_s3_prefix_is_accepted_when_not_complete() -> None:
    """S3: mid-scenario (inbound_complete=False) a prefix of what the peer sent suffices."""
    for delivered in (b"", b"he", b"hello"):
        b = inbound(*([delivered] if delivered else []))
        assert check_streams(b.events, [Stream(1, peer_sent=b"hello")]) == []


@pytest.mark.parametrize("complete", [True, False])
def test_s3_extra_bytes_are_reported(complete: bool) -> None:
    """S3: more bytes than the peer sent (duplicated, or another session's) is a violation,
    complete or not."""
    b = inbound(b"hello", b"hello")
    [v] = check_streams(b.events, [Stream(1, peer_sent=b"hello", inbound_complete=complete)])
    assert v.clause == "S3"
    assert "5 extra bytes after the 5 expected: b'hello'" in v.actual
    assert ("exactly" if complete else "a prefix of") in v.expected


@pytest.mark.parametrize("complete", [True, False])
def test_s3_differing_bytes_are_reported(complete: bool) -> None:
    """S3: reordered or corrupted bytes are reported at the first differing byte."""
    b = inbound(b"wor", b"hello ")
    [v] = check_streams(b.events, [Stream(1, peer_sent=b"hello wor", inbound_complete=complete)])
    assert v.clause == "S3"
    assert v.actual.startswith("they differ first at byte 0 (of 9 expected, 9 seen)")


def test_s3_difference_position_is_the_first_differing_byte() -> None:
    """S3: the message points at the first byte that differs, not at the start."""
    b = inbound(b"abcXef")
    [v] = check_streams(b.events, [Stream(1, peer_sent=b"abcdef", inbound_complete=True)])
    assert v.clause == "S3"
    assert "differ first at byte 3" in v.actual
    assert "expected b'def', got b'Xef'" in v.actual


def test_s3_streams_of_different_sessions_are_kept_apart() -> None:
    """S3: bytes delivered to id 2 do not count for id 1's peer."""
    b = TraceBuilder()
    b.connect(1)
    b.connect(2)
    b.recv(2, b"abc")
    b.release(1)
    b.release(2)
    found = check_streams(
        b.events,
        [
            Stream(1, peer_sent=b"abc", inbound_complete=True),
            Stream(2, peer_sent=b"abc", inbound_complete=True),
        ],
    )
    assert [(v.clause, v.session_id) for v in found] == [("S3", 1)]


# ---- S4 outbound: what the peer read vs the send() calls that returned True


def outbound(*sends: tuple[bytes, bool | None], sid: int = 1) -> TraceBuilder:
    b = TraceBuilder()
    b.connect(sid)
    for data, result in sends:
        b.send(sid, data, result=result)
    b.release(sid)
    return b


def test_s4_exact_bytes_in_call_order_are_accepted() -> None:
    """S4: the peer got the accepted sends, in order: clean."""
    b = outbound((b"one ", True), (b"two ", True), (b"three", True))
    s = Stream(1, peer_received=b"one two three", outbound_complete=True)
    assert check_streams(b.events, [s]) == []


def test_s4_missing_bytes_when_outbound_complete_are_reported() -> None:
    """S4: the peer read to EOF after a graceful close: every accepted byte must be there."""
    b = outbound((b"one ", True), (b"two", True))
    [v] = check_streams(b.events, [Stream(1, peer_received=b"one ", outbound_complete=True)])
    assert v.clause == "S4"
    assert v.session_id == 1
    assert v.expected == (
        "the peer of 1 to receive exactly the bytes of the send() calls that returned True"
    )
    assert v.actual == "only 4 of 7 bytes arrived; missing from byte 4"


def test_s4_prefix_is_accepted_when_not_complete() -> None:
    """S4: mid-scenario (outbound_complete=False) the peer may have read only a prefix."""
    b = outbound((b"one ", True), (b"two", True))
    for got in (b"", b"o", b"one t", b"one two"):
        assert check_streams(b.events, [Stream(1, peer_received=got)]) == []


@pytest.mark.parametrize("complete", [True, False])
def test_s4_extra_bytes_are_reported(complete: bool) -> None:
    """S4: bytes the peer got that no accepted send() queued (duplicated after a partial
    send, or another session's)."""
    b = outbound((b"abc", True))
    [v] = check_streams(b.events, [Stream(1, peer_received=b"abcbc", outbound_complete=complete)])
    assert v.clause == "S4"
    assert "2 extra bytes after the 3 expected: b'bc'" in v.actual


@pytest.mark.parametrize("complete", [True, False])
def test_s4_differing_bytes_are_reported(complete: bool) -> None:
    """S4: sends delivered out of call order differ from the accepted stream."""
    b = outbound((b"first", True), (b"second", True))
    [v] = check_streams(
        b.events, [Stream(1, peer_received=b"secondfirst", outbound_complete=complete)]
    )
    assert v.clause == "S4"
    assert "differ first at byte 0" in v.actual


@pytest.mark.parametrize("refused", [False, None], ids=["returned-False", "raised"])
def test_s4_sends_that_did_not_return_true_do_not_count(refused: bool | None) -> None:
    """S4: only send() calls that returned True are owed to the peer; a refused (S7) or
    raising send() is not."""
    b = outbound((b"a", True), (b"REFUSED", refused), (b"b", True))
    ok = Stream(1, peer_received=b"ab", outbound_complete=True)
    assert check_streams(b.events, [ok]) == []
    got_refused = Stream(1, peer_received=b"aREFUSEDb", outbound_complete=True)
    [v] = check_streams(b.events, [got_refused])
    assert v.clause == "S4"


def test_s4_nothing_accepted_and_nothing_received_is_clean() -> None:
    """S4: every send() refused and the peer got nothing: clean."""
    b = outbound((b"x", False), (b"y", False))
    assert check_streams(b.events, [Stream(1, outbound_complete=True)]) == []


def test_s4_sends_to_other_ids_do_not_count() -> None:
    """S4: bytes accepted for id 2 are not owed to id 1's peer."""
    b = TraceBuilder()
    b.connect(1)
    b.connect(2)
    b.send(2, b"for two")
    b.release(1)
    b.release(2)
    streams = [Stream(1, outbound_complete=True), Stream(2, peer_received=b"for two")]
    assert check_streams(b.events, streams) == []
    wrong = [Stream(1, peer_received=b"for two", outbound_complete=True)]
    assert [(v.clause, v.session_id) for v in check_streams(b.events, wrong)] == [("S4", 1)]


def test_s3_s4_both_directions_are_checked_independently() -> None:
    """S3, S4: one stream can break both; S3 is listed before S4."""
    b = TraceBuilder()
    b.connect(1)
    b.recv(1, b"in")
    b.send(1, b"out")
    b.release(1)
    s = Stream(
        1,
        peer_sent=b"inbound",
        inbound_complete=True,
        peer_received=b"o",
        outbound_complete=True,
    )
    assert clauses(check_streams(b.events, [s])) == ["S3", "S4"]


def test_s3_s4_clean_trace_gives_no_violations() -> None:
    """S1-S4: a well-behaved trace of several sessions, checked with final=True, is clean."""
    b = TraceBuilder()
    streams = []
    for sid in (1, 2, 3):
        b.connect(sid)
        b.send(sid, b"welcome")
        b.recv(sid, b"ping ")
        b.recv(sid, b"%d" % sid)
        b.send(sid, b"pong", result=True)
        b.send(sid, b"x" * 100, result=False)
        b.note("peer closes", session_id=sid)
        b.release(sid)
        b.send(sid, b"late", result=False)
        streams.append(
            Stream(
                sid,
                peer_sent=b"ping %d" % sid,
                inbound_complete=True,
                peer_received=b"welcomepong",
                outbound_complete=True,
            )
        )
    assert check_trace(b.events, streams, final=True) == []
