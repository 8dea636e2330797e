"""Mutant S1 (select): the session id is the socket's file descriptor.

The bug, as it is usually written:

    sid = conn.fileno()                  # "unique while the connection lives"
    self._sessions[sid] = Session(sid, conn, ...)

The OS hands a closed fd to the very next socket, so the next player gets the id of the one
who left, and anything still holding the old id -- a queued job, a late completion -- reaches
the newcomer. Caught by: S1 (an id given to a second connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.api import ServerConfig
from impls._core import SessionTable
from impls.select_ import SelectServer


class FdKeyedTable(SessionTable[Any]):
    def add(self, make_record: Callable[[int], Any]) -> Any:
        fd = make_record.keywords["conn"].fileno()  # type: ignore[attr-defined]
        record = make_record(fd)  # BUG: the handle is the id
        self._records[fd] = record
        return record


class FdIdServer(SelectServer):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self._table = FdKeyedTable()


make_server = FdIdServer
