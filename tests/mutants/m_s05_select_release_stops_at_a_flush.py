"""Mutant S5 (select): the loop's release pass stops at the first session still flushing.

The bug:

    for s in sessions:
        if s.closing and s.queue and not lingered:
            break                        # meant: continue -- "still flushing, next one"

One `break` for a `continue`. Every closing session the pass would meet after one that is
still flushing waits with it: a peer that half-closed, even with nothing queued, is released
only when that other peer -- a phone in a tunnel -- has taken its bytes, or when its linger
aborts it, seconds later. Alone, or first in line, each session is released in time, so only
two sessions closing on one loop show it.
Caught by: S5 (`test_s05_fin_releases_while_a_neighbour_flushes_to_a_stalled_peer`: the
FIN'd session is not released within a second).
"""

from __future__ import annotations

import socket
import time

from impls._core import CloseReason
from impls._sockets import abort_on_close, quietly
from impls.select_ import SelectServer, Session


class ReleaseStopsAtAFlushServer(SelectServer):
    def _finish_closing(self) -> None:
        assert self._handler is not None
        now = time.monotonic()
        done: list[Session] = []
        with self._lock:
            for s in list(self._by_sock.values()):
                if not s.life.closing:
                    continue
                abort = s.life.reason is CloseReason.RESET or now >= s.linger_deadline
                if s.queue and not abort:
                    break  # BUG: the sessions behind this one wait for its flush
                if abort:
                    abort_on_close(s.sock)
                else:
                    quietly(s.sock.shutdown, socket.SHUT_WR)
                del self._by_sock[s.sock]
                self._table.remove(s.id)
                s.sock.close()
                s.life.release()
                done.append(s)
        for s in done:
            self._call(self._handler.on_release, s.id)


make_server = ReleaseStopsAtAFlushServer
