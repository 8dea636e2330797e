"""Mutant S6 (select): send() writes to the socket itself, blocking, in the caller's thread.

The bug:

    def send(self, sid, data):
        s.sock.setblocking(True)
        s.sock.sendall(data)             # "simpler than a queue"

Fine while every peer reads. The first peer that stops reading fills its socket buffer, and
sendall() blocks the application thread -- the game loop, or the loop thread serving every
other player. Caught by: S6 (send() blocks while its peer is not reading).
"""

from __future__ import annotations

from impls.select_ import SelectServer


class BlockingSendServer(SelectServer):
    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._table.get(session_id)
            if s is None or not s.life.accepts_calls:
                return False
            if len(data) > s.queue.limit:
                return False
            sock = s.sock
        try:
            sock.setblocking(True)
            sock.sendall(data)  # BUG: waits for a peer that may never read
        except OSError:
            return False
        finally:
            sock.setblocking(False)
        return True


make_server = BlockingSendServer
