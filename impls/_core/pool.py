"""The session pool of the course notes (docs/models/iocp.md): an array of slots, and
64-bit ids of (generation, index).

A C++ server keeps its sessions in a preallocated array, so an id must find its slot at once
*and* tell a stale id from the slot's current user. The id packs both: the low INDEX_BITS are
the slot's index, the high bits the slot's generation, which goes up each time the slot is
reused. A stale id finds the slot, sees that the id there is not its own, and misses (S8); an
id could only repeat after one slot was reused 2**44 times (S1).

Rule 1: a slot's generation only ever increases.
Rule 2: get(id) returns a record only if the slot's current record has exactly that id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["INDEX_BITS", "SessionPool"]

R = TypeVar("R")

# 2**20 slots: a million simultaneous sessions, leaving 44 bits of generation per slot.
INDEX_BITS = 20
_INDEX_MASK = (1 << INDEX_BITS) - 1
_GENERATIONS = 1 << (64 - INDEX_BITS)


class SessionPool(Generic[R]):
    """Like SessionTable (same methods), but ids are (generation << INDEX_BITS) | index.

    Not thread-safe: callers serialise access.
    """

    __slots__ = ("_count", "_free", "_generations", "_issued", "_slots")

    def __init__(self) -> None:
        self._slots: list[tuple[int, R] | None] = []
        self._generations: list[int] = []
        self._free: list[int] = []  # LIFO: the slot freed last is warm in the cache
        self._count = 0
        self._issued = 0

    def add(self, make_record: Callable[[int], R]) -> R:
        """Take a free slot, give it its next generation, and store `make_record(id)`."""
        if self._free:
            index = self._free.pop()
        else:
            index = len(self._slots)
            if index > _INDEX_MASK:
                raise RuntimeError(f"session pool full: {index} sessions are open")
            self._slots.append(None)
            self._generations.append(0)
        generation = self._generations[index] + 1
        if generation >= _GENERATIONS:
            raise OverflowError(f"slot {index} was reused 2**44 times; its ids would repeat")
        self._generations[index] = generation
        session_id = (generation << INDEX_BITS) | index
        record = make_record(session_id)
        self._slots[index] = (session_id, record)
        self._count += 1
        self._issued += 1
        return record

    def get(self, session_id: int) -> R | None:
        """The record of `session_id`, or None if the slot holds another (or no) session."""
        if not isinstance(session_id, int) or session_id < 0:
            return None
        index = session_id & _INDEX_MASK
        entry = self._slots[index] if index < len(self._slots) else None
        return entry[1] if entry is not None and entry[0] == session_id else None

    def remove(self, session_id: int) -> R | None:
        """Free the slot of `session_id`; returns the record, or None if it was not there."""
        record = self.get(session_id)
        if record is not None:
            index = session_id & _INDEX_MASK
            self._slots[index] = None
            self._free.append(index)
            self._count -= 1
        return record

    def snapshot(self) -> list[R]:
        return [entry[1] for entry in self._slots if entry is not None]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[R]:
        return iter(self.snapshot())

    @property
    def issued(self) -> int:
        return self._issued
