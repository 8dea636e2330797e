"""Mutant S4 (select): a partial send is treated as complete.

The bug:

    n = sock.sendmsg(queue.buffers())
    queue.written(queue.pending)         # "send() sends what I give it"

A non-blocking send() takes only what fits in the kernel's send buffer. With a slow reader
that is less than what was asked, and the rest silently disappears. Caught by: S4 (the peer
receives fewer bytes than send() accepted, with the offset of the first gap).
"""

from __future__ import annotations

from impls.select_ import SelectServer, Session


class PartialSendServer(SelectServer):
    def _on_writable(self, s: Session) -> None:
        with self._lock:
            if not s.queue:
                return
            try:
                s.sock.sendmsg(s.queue.buffers())
            except OSError:
                return
            s.queue.written(s.queue.pending)  # BUG: ignores how much the kernel took


make_server = PartialSendServer
