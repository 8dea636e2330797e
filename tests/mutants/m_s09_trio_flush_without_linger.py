"""Mutant S9 (trio): closing waits for the flush with no time limit.

The bug:

    self._close(s, reason)
    await s.writer_done.wait()           # no `with trio.move_on_after(linger):`

A peer that stopped reading (a crashed phone, a bot) never takes the bytes; the session, its
socket and its task live on, and stop() never returns. Caught by: S9 (released once linger
expires).
"""

from __future__ import annotations

from impls.trio_ import Session, TrioServer


class EndlessFlushServer(TrioServer):
    async def _await_flush(self, s: Session) -> None:
        await s.writer_done.wait()  # BUG: no linger


make_server = EndlessFlushServer
