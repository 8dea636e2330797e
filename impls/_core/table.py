"""The session table: id -> session record, where every stale lookup misses (S1, S8).

Rule 1: a record is reachable by its id from `add()` until `remove()`, and never again.
Rule 2: an id that was never issued, or whose record was removed, finds nothing -- that is the
whole defence against a stale send() reaching the next user of a reused socket handle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .ids import IdAllocator

__all__ = ["SessionTable"]

R = TypeVar("R")


class SessionTable(Generic[R]):
    """Maps never-reused ids to records. Not thread-safe: callers serialise access."""

    __slots__ = ("_ids", "_records")

    def __init__(self) -> None:
        self._ids = IdAllocator()
        self._records: dict[int, R] = {}

    def add(self, make_record: Callable[[int], R]) -> R:
        """Issue a fresh id, build the record for it with `make_record(id)`, and store it."""
        session_id = self._ids.next_id()
        record = make_record(session_id)
        self._records[session_id] = record
        return record

    def get(self, session_id: int) -> R | None:
        """The live record for `session_id`, or None if it is unknown or removed."""
        return self._records.get(session_id)

    def remove(self, session_id: int) -> R | None:
        """Forget `session_id` for good; returns the record, or None if it was not there."""
        return self._records.pop(session_id, None)

    def snapshot(self) -> list[R]:
        """The live records, copied, so the caller may add or remove while iterating."""
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.snapshot())

    @property
    def issued(self) -> int:
        """How many ids this table has ever handed out."""
        return self._ids.issued
