"""Mutant S8 (iocp): the session pool checks that an id was issued, not that it is current.

The bug, as it is usually written:

    Session* Find(uint64_t id) {
        uint32_t index = id & INDEX_MASK, gen = id >> INDEX_BITS;
        if (index >= size_ || gen == 0 || gen > generation_[index])
            return nullptr;                          // "an id we never issued: forged"
        return sessions_[index].inUse ? &sessions_[index] : nullptr;
    }

The check rejects forged ids, and a stale id misses while its slot is empty, so nothing looks
wrong. But a stale id was issued too: once a newcomer sits in the slot (the generation went
up), the stale send() of a timer or a worker thread goes to the newcomer, and a stale
disconnect() kicks them. Caught by: S8 (send() on a released id returns True while a newer
session holds its slot).
"""

from __future__ import annotations

from typing import Any

from conformance.api import ServerConfig
from impls._core import SessionPool
from impls._core.pool import INDEX_BITS
from impls.iocp import IocpServer


class IssuedIdPool(SessionPool[Any]):
    def get(self, session_id: int) -> Any:
        if not isinstance(session_id, int) or session_id < 0:
            return None
        index, generation = session_id & ((1 << INDEX_BITS) - 1), session_id >> INDEX_BITS
        if index >= len(self._slots) or not 0 < generation <= self._generations[index]:
            return None  # never issued
        entry = self._slots[index]
        return entry[1] if entry is not None else None  # BUG: issued, but maybe not current


class IssuedIdServer(IocpServer):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self._table = IssuedIdPool()


make_server = IssuedIdServer
