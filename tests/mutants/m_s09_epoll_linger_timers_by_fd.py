"""Mutant S9 (epoll): linger timers sit in a heap keyed by file descriptor, never cancelled.

The bug, as it is usually written:

    heappush(timers, (now + linger, fd))     # on close: "abort fd if still flushing by then"
    ...
    while timers and timers[0][0] <= now:    # in the loop
        _, fd = heappop(timers)
        s = sessions.get(fd)
        if s and s.closing: abort(s)         # "a stale timer finds nothing: harmless"

A close that finishes early leaves its timer in the heap. Cancelling it looks unnecessary --
the timer checks the state when it fires -- until the OS hands the freed fd to a newcomer
that is closing too, flushing a big goodbye to a slow reader: the old timer aborts it
mid-flush, long before its own linger expired. Caught by: S9 (the new peer receives every
accepted byte, then EOF).
"""

from __future__ import annotations

import heapq
import time

from conformance.api import ServerConfig
from impls._core import CloseReason
from impls.epoll_et import EpollServer, Loop, Session


class FdTimerServer(EpollServer):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self._timers: list[tuple[float, int]] = []  # (due, fd), guarded by self._lock

    def _begin_close(self, s: Session) -> None:
        super()._begin_close(s)
        if s.life.reason is not CloseReason.RESET:  # (a reset aborts at once, as before)
            s.life.deadline = float("inf")  # the heap decides when linger is over
        heapq.heappush(self._timers, (time.monotonic() + self._config.linger, s.sock.fileno()))

    def _finish_closing(self, loop: Loop) -> None:
        with self._lock:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, fd = heapq.heappop(self._timers)
                for owner in self._loops:
                    s = owner.sessions.get(fd)  # BUG: the fd may name a newcomer by now
                    if s is not None and s.life.closing:
                        s.life.expire()
                        owner.wake()
        super()._finish_closing(loop)

    def _next_deadline(self, loop: Loop) -> float | None:
        """Caller holds the lock: epoll_wait until the heap's next timer."""
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())


make_server = FdTimerServer
