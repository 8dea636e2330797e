"""Mutant S10 (blocking): the "iterative server" -- accept one client, serve it, accept the next.

The bug, the first server everyone writes:

    while True:
        conn, addr = listener.accept()
        serve(conn)                      # runs until this client leaves

While one player is connected nobody else gets in: the others wait in the listen backlog
until it overflows. Caught by: S10 (bursts of connects are all accepted).
"""

from __future__ import annotations

import threading
from functools import partial

from impls.blocking import BlockingServer


class IterativeServer(BlockingServer):
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, addr = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                s = self._table.add(partial(self._new_session, conn=conn, addr=addr))
                s.reader = threading.current_thread()
                self._readers.add(s.reader)
            self._serve(s)  # BUG: the acceptor serves this client until it leaves


make_server = IterativeServer
