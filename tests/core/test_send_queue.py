"""S4, S7 in the core: `SendQueue` keeps partial-send accounting exact and refuses whole chunks."""

from __future__ import annotations

from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impls._core import SendQueue
from impls._core.send_queue import MAX_GATHER


def drain(q: SendQueue, step: int = 3, max_count: int = MAX_GATHER) -> bytes:
    """Empty `q` the way a model would, `step` bytes per write; return the bytes written."""
    out = bytearray()
    while q:
        views = q.buffers(max_count)
        available = b"".join(views)
        assert available, "a non-empty queue offered no bytes to write"
        n = min(step, len(available))
        out += available[:n]
        q.written(n)
    return bytes(out)


def test_s7_docstring_example() -> None:
    """S7: a chunk that would go over the limit is refused whole; S4: the rest stays in order."""
    q = SendQueue(limit=10)
    assert (q.offer(b"hello"), q.offer(b"world"), q.offer(b"!")) == (True, True, False)
    q.written(3)
    assert q.pending == 7
    assert b"".join(q.buffers()) == b"loworld"


def test_s7_filling_to_exactly_the_limit_succeeds() -> None:
    """S7: the limit is inclusive: pending may reach `limit`, never exceed it."""
    q = SendQueue(limit=4)
    assert q.offer(b"ab")
    assert q.offer(b"cd")
    assert q.pending == 4
    assert not q.offer(b"e")
    assert q.offer(b"")  # empty data is accepted and queues nothing
    assert q.pending == 4


def test_s7_limit_zero_accepts_only_empty_data() -> None:
    """S7: with limit 0 every non-empty send is refused."""
    q = SendQueue(limit=0)
    assert q.offer(b"")
    assert not q
    assert not q.offer(b"x")
    assert q.pending == 0
    assert q.buffers() == []


def test_s7_negative_limit_is_rejected() -> None:
    """S7: a negative send_queue_limit is a configuration error."""
    with pytest.raises(ValueError, match="limit"):
        SendQueue(limit=-1)


def test_s7_send_succeeds_again_once_the_queue_drains() -> None:
    """S7: a refused offer leaves the session usable; after written() frees room it succeeds."""
    q = SendQueue(limit=5)
    assert q.offer(b"abcde")
    assert not q.offer(b"f")
    q.written(1)
    assert q.offer(b"f")
    assert drain(q) == b"bcdef"


def test_s4_partial_write_keeps_the_rest_first_in_line() -> None:
    """S4: writing 3 of 10 bytes leaves the other 7 queued, ahead of later chunks."""
    q = SendQueue(limit=100)
    q.offer(b"0123456789")
    q.offer(b"abc")
    q.written(3)
    views = q.buffers()
    assert [bytes(v) for v in views] == [b"3456789", b"abc"]
    q.written(7)  # exactly the rest of the head chunk
    assert [bytes(v) for v in q.buffers()] == [b"abc"]
    q.written(3)
    assert not q
    assert q.buffers() == []


def test_s4_written_more_than_pending_is_an_error_and_changes_nothing() -> None:
    """S4: written(n) with n > pending (or < 0) is a bug in the model; the queue is unchanged."""
    q = SendQueue(limit=100)
    q.offer(b"abc")
    for bad in (4, -1):
        with pytest.raises(ValueError):
            q.written(bad)
        assert q.pending == 3
        assert b"".join(q.buffers()) == b"abc"
    q.written(0)
    assert q.pending == 3


def test_s4_offer_copies_the_callers_buffer() -> None:
    """S4: the caller may reuse its buffer after send(); the queued bytes must not change."""
    q = SendQueue(limit=100)
    buf = bytearray(b"hello")
    # offer() is annotated `bytes`, but send() is documented to let the caller reuse its buffer.
    assert q.offer(cast(bytes, buf))
    buf[:] = b"XXXXX"
    assert drain(q) == b"hello"


def test_s4_buffers_respects_max_count() -> None:
    """S4: a gather write gets at most `max_count` views, the oldest bytes first."""
    q = SendQueue(limit=1000)
    for i in range(MAX_GATHER + 10):
        q.offer(bytes([i % 256]))
    assert len(q.buffers()) == MAX_GATHER
    assert [bytes(v) for v in q.buffers(3)] == [b"\x00", b"\x01", b"\x02"]
    assert q.buffers(0) == []


def test_s9_clear_drops_everything_and_reports_how_much() -> None:
    """S9: an abort (linger expired, reset) drops the queue; clear() returns the dropped count."""
    q = SendQueue(limit=100)
    q.offer(b"abcdef")
    q.written(2)
    assert q.clear() == 4
    assert not q
    assert q.pending == 0
    assert q.buffers() == []
    assert q.clear() == 0
    assert q.offer(b"xyz")
    assert drain(q) == b"xyz"


def test_s7_repr_shows_pending_and_limit() -> None:
    """S7: the repr (seen in failure output) names the pending bytes and the limit."""
    q = SendQueue(limit=9)
    q.offer(b"ab")
    assert repr(q) == "<SendQueue pending=2 chunks=1 limit=9>"


Offer = tuple[str, bytes, int, int]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.binary(max_size=12), st.just(0), st.just(0)),
        # ("write", _, how much of what buffers() offers, max_count for buffers())
        st.tuples(
            st.just("write"),
            st.just(b""),
            st.integers(min_value=0, max_value=1000),
            st.integers(min_value=1, max_value=5),
        ),
    ),
    max_size=80,
)


@settings(max_examples=150)
@given(st.integers(min_value=0, max_value=40), operations)
def test_s4_s7_bytes_out_are_exactly_the_accepted_offers_in_order(
    limit: int, ops: list[Offer]
) -> None:
    """S4, S7: for any offers and partial written(n): the bytes taken out via buffers() and
    written() concatenate to exactly the accepted offers in order; pending is always
    accepted minus written; offer() is False exactly when pending + len > limit, and a refused
    offer queues nothing."""
    q = SendQueue(limit=limit)
    accepted = bytearray()
    taken = bytearray()
    for op, data, amount, max_count in ops:
        if op == "offer":
            before = q.pending
            expect = before + len(data) <= limit
            assert q.offer(data) is expect
            if expect:
                accepted += data
                assert q.pending == before + len(data)
            else:
                assert q.pending == before  # refused: nothing of it was queued
        else:
            views = q.buffers(max_count)
            assert len(views) <= max_count
            available = b"".join(views)
            n = amount % (len(available) + 1)
            taken += available[:n]
            q.written(n)
        # Invariants after every step.
        assert q.pending == len(accepted) - len(taken)
        assert 0 <= q.pending <= limit
        assert bool(q) == (q.pending > 0)
        assert b"".join(q.buffers(10**6)) == accepted[len(taken) :]
        assert all(len(v) > 0 for v in q.buffers(10**6))
    taken += drain(q)
    assert bytes(taken) == bytes(accepted)
    assert q.pending == 0
