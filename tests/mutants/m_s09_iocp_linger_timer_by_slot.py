"""Mutant S9 (iocp): the linger timer remembers the session's pool slot, not its id.

The bug, as it is usually written:

    void Session::Close() {
        ...
        timers.After(linger, [slot = this->slot] {   // in C++ often just `this`: a pointer
            Session& s = pool[slot];                 //   into the preallocated array
            if (s.closing && !s.finSent) s.Abort();  // "it checks the session is still
        });                                          //   closing, so a stale timer is harmless"
    }

A close that finishes early leaves its timer armed; the timer is never cancelled, because it
checks the state when it fires. But the pool hands the freed slot to the next session (last
freed, first reused), and if that newcomer is closing too -- flushing a big goodbye to a slow
reader -- the old timer aborts it mid-flush: its peer gets a reset and a truncated stream, long
before its own linger expired. Caught by: S9 (the new peer receives every accepted byte, then
EOF).
"""

from __future__ import annotations

from impls._completion_port import OpKind, Overlapped
from impls._core import CloseReason
from impls._core.pool import INDEX_BITS
from impls.iocp import IocpServer, Linger, Session


class SlotLingerServer(IocpServer):
    def _close(self, s: Session, reason: CloseReason) -> bool:
        assert self._port is not None
        if not s.life.close(reason):
            return False
        if reason.flushes:
            slot = s.id & ((1 << INDEX_BITS) - 1)  # BUG: the slot, not the id
            self._port.post_after(self._config.linger, Linger(slot),
                                  Overlapped(OpKind.TIMER, None))
        else:
            self._abort(s)
        self._finish_close(s)
        return True

    def _on_linger_expired(self, slot: int) -> None:
        with self._lock:
            found = [s for s in self._table.snapshot()
                     if s.id & ((1 << INDEX_BITS) - 1) == slot]  # whoever holds it now
        for s in found:
            with s.lock:
                if s.life.closing and not s.fin_sent:
                    self._abort(s)
                    self._finish_close(s)


make_server = SlotLingerServer
