"""The session pool (impls/_core/pool.py): ids of (generation, index) that are never reused
(S1) and that miss once their session is gone, although the slot is in use again (S8)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from impls._core import SessionPool
from impls._core.pool import INDEX_BITS


def test_s1_s8_a_reused_slot_gets_a_new_id_and_the_old_one_misses():
    pool: SessionPool[str] = SessionPool()
    first = pool.add(lambda sid: f"a:{sid}")
    old_id = int(first.split(":")[1])
    pool.remove(old_id)
    second = pool.add(lambda sid: f"b:{sid}")
    new_id = int(second.split(":")[1])
    assert new_id & ((1 << INDEX_BITS) - 1) == old_id & ((1 << INDEX_BITS) - 1)  # same slot
    assert new_id != old_id
    assert pool.get(old_id) is None  # stale: lands nowhere
    assert pool.get(new_id) == second


def test_s8_bogus_ids_miss():
    pool: SessionPool[int] = SessionPool()
    pool.add(lambda sid: sid)
    for bogus in (-1, 0, 2**64 - 1, 12345, "7", None):
        assert pool.get(bogus) is None  # type: ignore[arg-type]


@given(st.lists(st.one_of(st.just("add"), st.integers(0, 30)), max_size=200))
def test_s1_s8_behaves_like_a_dict_with_never_reused_keys(ops):
    """Adds and removes in any order: every issued id is new and 64-bit, live ids find their
    record, removed ids find nothing."""
    pool: SessionPool[int] = SessionPool()
    live: dict[int, int] = {}
    issued: list[int] = []
    for op in ops:
        if op == "add":
            record = pool.add(lambda sid: sid)
            assert record not in issued and 0 <= record < 2**64
            issued.append(record)
            live[record] = record
        elif issued:
            victim = issued[op % len(issued)]
            assert pool.remove(victim) == live.pop(victim, None)
        assert len(pool) == len(live)
    for sid in issued:
        assert pool.get(sid) == live.get(sid)
    assert sorted(pool.snapshot()) == sorted(live.values())
