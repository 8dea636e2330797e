"""Mutant S9 (trio): closing waits for the flush with no time limit.

The bug:

    async with trio.open_nursery() as tasks:   # the writer flushes in here
        ...
        self._close(s, reason)
                                               # no tasks.cancel_scope.deadline = linger
    # the nursery exits once the writer has sent everything -- whenever that is

A peer that stopped reading (a crashed phone, a bot) never takes the bytes; the writer waits
in send_all, the nursery waits for the writer, and the session, its socket and its task live
on: stop() never returns. Caught by: S9 (released once linger expires).
"""

from __future__ import annotations

import trio

from impls.trio_ import Session, TrioServer


class EndlessFlushServer(TrioServer):
    def _await_flush(self, s: Session, tasks: trio.Nursery) -> None:
        pass  # BUG: no linger deadline on the nursery that waits for the writer


make_server = EndlessFlushServer
