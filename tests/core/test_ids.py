"""S1 identity, in the core: `IdAllocator` hands out 1, 2, 3, ... and never an id twice."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impls._core import MAX_SESSION_ID, IdAllocator


def test_s1_max_session_id_is_the_largest_64_bit_id() -> None:
    """S1: ids are ints in [0, 2**64), so the largest one is 2**64 - 1."""
    assert MAX_SESSION_ID == 2**64 - 1


def test_s1_first_id_is_one_and_zero_is_never_issued() -> None:
    """S1: 0 is never issued, so a zeroed field never names a live session."""
    ids = IdAllocator()
    assert ids.issued == 0
    assert ids.next_id() == 1
    assert ids.issued == 1


@given(st.integers(min_value=0, max_value=300))
def test_s1_ids_strictly_increase_and_never_repeat(count: int) -> None:
    """S1: for any number of calls, the ids are 1..n, strictly increasing, all distinct."""
    ids = IdAllocator()
    issued = [ids.next_id() for _ in range(count)]
    assert issued == list(range(1, count + 1))
    assert all(a < b for a, b in itertools.pairwise(issued))
    assert len(set(issued)) == count
    assert 0 not in issued
    assert all(isinstance(i, int) and not isinstance(i, bool) for i in issued)
    assert all(0 <= i <= MAX_SESSION_ID for i in issued)
    assert ids.issued == count


@given(st.lists(st.integers(min_value=0, max_value=20), max_size=10))
def test_s1_allocators_are_independent(counts: list[int]) -> None:
    """S1: each allocator (one per server) has its own counter; one does not advance another."""
    allocators = [IdAllocator() for _ in counts]
    for alloc, n in zip(allocators, counts, strict=True):
        for _ in range(n):
            alloc.next_id()
    assert [a.issued for a in allocators] == counts


def test_s1_allocator_refuses_to_wrap_past_64_bits() -> None:
    """S1: wrapping around would reissue 1; the allocator raises instead, and keeps raising."""
    ids = IdAllocator()
    ids._last = MAX_SESSION_ID - 1  # fast-forward 146 million years
    assert ids.next_id() == MAX_SESSION_ID
    with pytest.raises(OverflowError):
        ids.next_id()
    with pytest.raises(OverflowError):
        ids.next_id()
    assert ids.issued == MAX_SESSION_ID


def test_s1_allocator_has_no_instance_dict() -> None:
    """S1: the allocator's only state is its counter (slots), so nothing else can reset it."""
    assert not hasattr(IdAllocator(), "__dict__")
