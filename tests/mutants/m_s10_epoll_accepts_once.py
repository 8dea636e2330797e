"""Mutant S10 (epoll): one accept() per edge-triggered event on the listener.

The bug:

    if fd == listener.fileno():
        conn, addr = listener.accept()   # one connection per event

A burst of connects that arrives while the loop is busy is one edge. One is accepted; the
rest wait in the backlog until some later connect makes a new edge -- and after the last
connect of the burst, none does. Caught by: S10 (every connect of a burst is accepted).
"""

from __future__ import annotations

from impls.epoll_et import EpollServer


class AcceptOnceServer(EpollServer):
    def _on_acceptable(self) -> None:
        assert self._listener is not None
        self._accept_pending = False  # BUG: as if one accept drained the edge
        try:
            conn, addr = self._listener.accept()
        except OSError:
            return
        loop = self._loops[next(self._next_loop)]
        with self._lock:
            loop.inbox.append((conn, (addr[0], addr[1])))
            loop.wake()


make_server = AcceptOnceServer
