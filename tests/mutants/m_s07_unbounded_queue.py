"""Mutant S7 (select): the send queue has no limit.

The bug:

    def offer(self, data):
        self.chunks.append(data)         # "memory is cheap"
        return True

A client that stops reading (a stuck phone, a malicious bot) makes the server buffer
everything sent to it, until the process runs out of memory and every player is dropped.
Caught by: S7 (send() never returns False to a peer that reads nothing).
"""

from __future__ import annotations

import socket

from impls._core import Lifecycle, SendQueue
from impls.select_ import SelectServer, Session


class UnboundedQueueServer(SelectServer):
    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int]) -> Session:
        queue = SendQueue(limit=2**62)  # BUG: send_queue_limit ignored
        return Session(sid, conn, (addr[0], addr[1]), queue, Lifecycle())


make_server = UnboundedQueueServer
