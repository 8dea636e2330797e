"""Mutant S6 (blocking): send()'s write at once is a plain blocking send.

The bug, in a thread-per-session server that writes from send() to save the writer thread:

    if not queued_before:
        n = sock.sendmsg(queue.buffers())     # the socket is blocking: no MSG_DONTWAIT

While every peer reads, the kernel takes the bytes at once and nothing shows. When a peer
stops reading and its buffers fill, that sendmsg() waits for it: send() blocks whoever
called it -- the game loop, or another player's reader thread broadcasting to it -- and
holds the server's one lock while it waits, so every other send(), accept and release waits
for that one peer too. Caught by: S6 (send() blocks while its peer is not reading).
"""

from __future__ import annotations

import threading

from impls._core import CloseReason
from impls.blocking import BlockingServer, Session


class BlockingWriteNowServer(BlockingServer):
    def _write_now(self, s: Session) -> None:
        try:
            n = s.sock.sendmsg(s.queue.buffers())  # BUG: no MSG_DONTWAIT: waits for the peer
        except OSError:
            self._close(s, CloseReason.RESET)
            return
        s.queue.written(n)
        if s.queue:
            s.writer = threading.Thread(target=self._write, args=(s,), daemon=True)
            s.writer.start()


make_server = BlockingWriteNowServer
