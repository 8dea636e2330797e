"""Mutant S13 (trio): send() hands its bytes over with trio.from_thread.run_sync.

The bug:

    def send(self, sid, data):
        trio.from_thread.run_sync(self._enqueue, sid, data, trio_token=self._token)

`from_thread.run_sync` waits until the Trio thread has run the function. From an application
thread that is merely slow; from inside a callback -- which runs *on* the Trio thread -- it
can never happen (Trio refuses and raises, where a hand-rolled version deadlocks), so the
echo server cannot answer from on_recv. `TrioToken.run_sync_soon` queues the call and returns.
Caught by: S13 (send() from inside a callback).
"""

from __future__ import annotations

import trio

from impls.trio_ import Session, TrioServer


class WaitingSendServer(TrioServer):
    def _poke(self, s: Session) -> None:
        # BUG: waits for the Trio thread; from a callback that *is* the Trio thread.
        trio.from_thread.run_sync(self._wake, s, trio_token=self._token)


make_server = WaitingSendServer
