"""Mutant S11 (blocking): stop() releases the sessions first and closes the listener last.

The bug:

    def stop(self):
        for s in self.sessions: s.close()    # everyone out ...
        for t in self.readers: t.join()
        self.listener.close()                # ... then lock the door

Read top to bottom it looks tidy. But the acceptor keeps accepting while the release pass
waits for the sessions' threads (a flush to a slow client may take its whole linger), and
whoever connects in that window gets on_connect after the pass: nobody ever closes that
session, stop() returns without its on_release, and its thread lives on. A test that stops
an idle server never sees it; clients that keep connecting during a shutdown (a load balancer
still sending players, a reconnect loop) always do.
Caught by: S11 (`test_s11_stop_while_connects_keep_arriving`: on_release for every session
before stop() returns).
"""

from __future__ import annotations

import socket

from impls._core import CloseReason
from impls._sockets import quietly
from impls.blocking import BlockingServer


class DoorClosedLastServer(BlockingServer):
    def stop(self) -> None:
        with self._lock:
            for s in self._table:
                self._close(s, CloseReason.STOP)
            readers = list(self._readers)
        for t in readers:
            t.join()
        with self._lock:  # BUG: only now does the acceptor learn that we are stopping
            self._stopping = True
        if self._listener is not None:
            quietly(self._listener.shutdown, socket.SHUT_RDWR)
        if self._acceptor is not None:
            self._acceptor.join()
        if self._listener is not None:
            self._listener.close()


make_server = DoorClosedLastServer
