"""Mutant S5 (select): the loop's release pass stops at the first session still flushing.

The bug:

    for s in sessions:
        if s.closing and not advance(s):  # the core says wait: still flushing
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

import time

from impls._core import advance
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
                if not advance(self, s, now):
                    break  # BUG: the sessions behind this one wait for its flush
                done.append(s)
        for s in done:
            self._call(self._handler.on_release, s.id)


make_server = ReleaseStopsAtAFlushServer
