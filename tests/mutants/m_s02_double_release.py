"""Mutant S2 (blocking): on_release is called twice -- once by the writer, once by the reader.

The bug:

    def _write(self, s):                 # writer thread, after the flush
        ...
        self._handler.on_release(s.id)   # "the session is done when its writes are"

The reader thread releases the session as well, so on_release runs twice, from two threads,
possibly at the same time. Only a session whose peer was once slow to read has a writer (the
model writes at once from send() otherwise), so a test that echoes a few bytes to a reading
peer never sees the bug; the suite's injected short writes give a session its writer.
Caught by: S2 (on_release exactly once, under injected faults).
"""

from __future__ import annotations

from impls.blocking import BlockingServer, Session


class DoubleReleaseServer(BlockingServer):
    def _write(self, s: Session) -> None:
        super()._write(s)
        assert self._handler is not None
        self._handler.on_release(s.id)  # BUG: the reader releases it too


make_server = DoubleReleaseServer
