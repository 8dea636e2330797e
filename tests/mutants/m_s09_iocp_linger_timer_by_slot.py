"""Mutant S9 (iocp): the linger timer remembers the session's pool slot, not its id.

The bug, as it is usually written:

    void Session::Close() {
        ...
        timers.After(linger, [slot = this->slot] {   // in C++ often just `this`: a pointer
            Session& s = pool[slot];                 //   into the preallocated array
            if (s.closing && !s.finSent) s.Abort();  // "it checks the session is still
        });                                          //   closing, so a stale timer is harmless"
    }

A close with bytes to flush arms its timer; when the flush finishes early, the timer is left
armed -- never cancelled, because it checks the state when it fires. But the pool hands the
freed slot to the next session (last freed, first reused), and if that newcomer is closing
too -- flushing a big goodbye to a slow reader -- the old timer aborts it mid-flush: its peer
gets a reset and a truncated stream, long before its own linger expired. Caught by: S9 (the
new peer receives every accepted byte, then EOF).
"""

from __future__ import annotations

import time

from impls._completion_port import OpKind, Overlapped
from impls._core import advance
from impls._core.pool import INDEX_BITS
from impls.iocp import IocpServer, Linger, Session


class SlotLingerServer(IocpServer):
    def _begin_close(self, s: Session) -> None:
        assert self._port is not None
        now = time.monotonic()
        advance(self, s, now)
        if (deadline := s.life.wake_at) is not None:
            slot = s.id & ((1 << INDEX_BITS) - 1)  # BUG: the slot, not the id
            self._port.post_after(deadline - now, Linger(slot), Overlapped(OpKind.TIMER, None))

    def _on_linger_expired(self, slot: int) -> None:
        with self._lock:
            found = [s for s in self._table.snapshot()
                     if s.id & ((1 << INDEX_BITS) - 1) == slot]  # whoever holds it now
        for s in found:
            with s.lock:
                s.io.started()
                s.life.expire()  # aborts it if it is still flushing
            self._finished(s)


make_server = SlotLingerServer
