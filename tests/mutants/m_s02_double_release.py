"""Mutant S2 (blocking): on_release is called twice -- once by the writer, once by the reader.

The bug:

    def _write(self, s):                 # writer thread, after the flush
        ...
        self._handler.on_release(s.id)   # "the session is done when its writes are"

The reader thread releases the session as well, so on_release runs twice, from two threads,
possibly at the same time. Caught by: S2 (on_release exactly once).
"""

from __future__ import annotations

from impls.blocking import BlockingServer, Session


class DoubleReleaseServer(BlockingServer):
    def _write(self, s: Session) -> None:
        super()._write(s)
        assert self._handler is not None
        self._handler.on_release(s.id)  # BUG: the reader releases it too


make_server = DoubleReleaseServer
