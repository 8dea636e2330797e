"""Mutant S7 (iocp): send() checks the queue as it was, not as it would be.

The bug:

    def send(self, sid, data):
        if len(data) > limit:            # a message bigger than the budget can never fit
            return False
        if s.bytes_queued > limit:       # over budget: refuse until it drains
            return False
        s.bytes_queued += len(data)      # ...else queue it, whole
        SendPost(s)

The question send() must answer is whether the queue *with* this call's bytes stays within
the limit. Asking whether the queue *already* is over it lets every call through while the
queue is at or under the limit, so the queue ends up to a whole message past it: with 1 MB
snapshots, a limit meant to cap a slow client's memory is off by a megabyte per session.
The first guard makes every check on an idle session pass -- a call larger than the limit is
refused, one of exactly the limit accepted, a limit of 0 refuses everything -- so only a
queue that is already partly full shows the bug, and the suite can only know how full from
the kernel's figures (docs/contract.md, S7). Caught by: S7
(`test_s07_limit_on_a_partly_full_queue`: once the pipe to a peer that reads nothing is
stalled, the server holds more than `send_queue_limit` bytes itself).
"""

from __future__ import annotations

import sys

from impls._core import SendQueue
from impls.iocp import IocpServer


class OldSizeCheckServer(IocpServer):
    def send(self, session_id: int, data: bytes) -> bool:
        s = self._lookup(session_id)
        if s is None:
            return False
        with s.lock:
            if not s.life.accepts_calls or len(data) > s.queue.limit:
                return False
            if s.queue.pending > s.queue.limit:  # BUG: the queue before this call
                return False
            _queue_anyway(s.queue, data)
            self._send_post(s)
            return True


def _queue_anyway(queue: SendQueue, data: bytes) -> None:
    """Queue all of `data` whatever the limit says (the check above was the only one)."""
    limit, queue.limit = queue.limit, sys.maxsize
    try:
        queue.offer(data)
    finally:
        queue.limit = limit


make_server = OldSizeCheckServer
