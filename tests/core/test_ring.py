"""The receive ring lent to RecvPost (impls/_core/ring.py): at most two free segments, in
order, and what was committed comes back whole and in order (S3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impls._core import RingBuffer


def test_s3_empty_ring_offers_one_segment_of_everything():
    ring = RingBuffer(16)
    assert [len(s) for s in ring.free_segments()] == [16]
    assert len(ring) == 0


def test_s3_wrapped_ring_offers_two_segments_in_order():
    ring = RingBuffer(8)
    ring.free_segments()[0][:6] = b"abcdef"
    ring.commit(6)
    assert ring.take() == b"abcdef"
    first, second = ring.free_segments()
    assert (len(first), len(second)) == (2, 6)
    first[:] = b"gh"
    second[:3] = b"ijk"
    ring.commit(5)
    assert ring.take() == b"ghijk"


def test_s3_full_ring_offers_nothing_and_rejects_overcommit():
    ring = RingBuffer(4)
    ring.free_segments()[0][:] = b"wxyz"
    ring.commit(4)
    assert ring.free_segments() == []
    with pytest.raises(ValueError):
        ring.commit(1)


def test_ring_capacity_must_be_positive():
    with pytest.raises(ValueError):
        RingBuffer(0)


@given(capacity=st.integers(1, 64), writes=st.lists(st.binary(max_size=64), max_size=30))
def test_s3_what_is_committed_is_taken_back_in_order(capacity, writes):
    """Any sequence of scatter writes (as recvmsg_into fills the segments) and takes: the
    taken bytes concatenate to exactly the committed bytes."""
    ring = RingBuffer(capacity)
    put, got = bytearray(), bytearray()
    for data in writes:
        data = data[: capacity - len(ring)]
        rest = memoryview(data)
        for seg in ring.free_segments():
            n = min(len(seg), len(rest))
            seg[:n] = rest[:n]
            rest = rest[n:]
        ring.commit(len(data))
        put += data
        if len(ring) == capacity or not data:
            got += ring.take()
    got += ring.take()
    assert bytes(got) == bytes(put)
    assert len(ring) == 0
