"""S1, S8 in the core: `SessionTable` maps never-reused ids to records; stale lookups miss."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impls._core import MAX_SESSION_ID, SessionTable


@dataclass
class Rec:
    sid: int


def test_s1_add_passes_the_fresh_id_to_make_record() -> None:
    """S1: the record is built with the id the table issued, and found under it."""
    table: SessionTable[Rec] = SessionTable()
    a = table.add(Rec)
    b = table.add(Rec)
    assert (a.sid, b.sid) == (1, 2)
    assert table.get(1) is a
    assert table.get(2) is b
    assert len(table) == 2
    assert table.issued == 2


def test_s8_removed_id_is_never_found_again() -> None:
    """S8: after remove(id), get(id) and remove(id) find nothing, and the id is not reissued."""
    table: SessionTable[Rec] = SessionTable()
    a = table.add(Rec)
    assert table.remove(a.sid) is a
    assert table.get(a.sid) is None
    assert table.remove(a.sid) is None
    b = table.add(Rec)
    assert b.sid != a.sid
    assert table.get(a.sid) is None
    assert table.get(b.sid) is b


@pytest.mark.parametrize("sid", [0, -1, 1, 2, 10**6, MAX_SESSION_ID, 2**64])
def test_s8_never_issued_ids_find_nothing(sid: int) -> None:
    """S8: an id that was never issued (0, negative, not yet reached, huge) finds no record."""
    table: SessionTable[Rec] = SessionTable()
    assert table.get(sid) is None
    assert table.remove(sid) is None
    assert len(table) == 0


def test_s1_id_consumed_by_a_failing_make_record_is_not_reissued() -> None:
    """S1: if building the record raises, that id is burnt; the next add gets a new one."""
    table: SessionTable[Rec] = SessionTable()

    def boom(sid: int) -> Rec:
        raise RuntimeError(f"cannot build {sid}")

    with pytest.raises(RuntimeError, match="cannot build 1"):
        table.add(boom)
    assert table.get(1) is None
    assert len(table) == 0
    assert table.add(Rec).sid == 2
    assert table.issued == 2


def test_s11_iteration_is_over_a_snapshot() -> None:
    """S11: stop() walks the live sessions and removes each; iterating must tolerate that."""
    table: SessionTable[Rec] = SessionTable()
    recs = [table.add(Rec) for _ in range(5)]
    seen = []
    for rec in table:
        seen.append(rec)
        table.remove(rec.sid)
        table.add(Rec)  # adding during the walk must not disturb it either
    assert seen == recs
    assert len(table) == 5
    snap = table.snapshot()
    snap.clear()
    assert len(table) == 5  # the snapshot is a copy


# Operations: ("add",), ("remove", k), ("get", k). k picks among issued ids when it is within
# range, else names an id that was never issued.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.just(0)),
        st.tuples(st.just("remove"), st.integers(min_value=-3, max_value=40)),
        st.tuples(st.just("get"), st.integers(min_value=-3, max_value=40)),
    ),
    max_size=60,
)


@given(ops)
def test_s1_s8_table_matches_a_dict_model_and_stale_ids_miss(
    operations: list[tuple[str, int]],
) -> None:
    """S1, S8: against a model: ids are fresh on every add, lookups of removed or never-issued
    ids return None, live ids return their record, and len/snapshot agree."""
    table: SessionTable[Rec] = SessionTable()
    live: dict[int, Rec] = {}
    removed: set[int] = set()
    issued: list[int] = []
    for op, k in operations:
        if op == "add":
            rec = table.add(Rec)
            assert rec.sid not in issued, "an id was reissued"
            assert rec.sid == len(issued) + 1
            issued.append(rec.sid)
            live[rec.sid] = rec
        elif op == "remove":
            got = table.remove(k)
            assert got is live.pop(k, None)
            if got is not None:
                removed.add(k)
        else:
            got = table.get(k)
            assert got is live.get(k)
            if k in removed or k not in issued:
                assert got is None
        assert len(table) == len(live)
        assert table.issued == len(issued)
        assert {r.sid for r in table.snapshot()} == set(live)
    for sid in removed:
        assert table.get(sid) is None
    for sid in (0, -1, len(issued) + 1, MAX_SESSION_ID):
        assert table.get(sid) is None
