"""The bounded send queue with partial-send accounting (S4, S7).

Rule 1: the queue only ever shrinks by `written(n)`, with the `n` the kernel actually took.
A send() that wrote 3 of 10 bytes leaves 7 queued, first in line; forgetting them is the
classic "bytes lost on a partial send" bug.
Rule 2: `offer()` takes all of a chunk or none of it, so the peer never sees half a message
followed by the next one (S4: each call's bytes are contiguous) and the caller knows exactly
what was refused (S7).
"""

from __future__ import annotations

from collections import deque

__all__ = ["SendQueue"]

# How many buffers one gather write (sendmsg / WSASend with a WSABUF array) takes at most.
# Linux accepts up to IOV_MAX (1024) iovecs; 64 already amortises the syscall over many
# small messages while keeping the list we build per call short.
MAX_GATHER = 64


class SendQueue:
    """Bytes accepted by send() and not yet handed to the kernel. Not thread-safe.

    >>> q = SendQueue(limit=10)
    >>> q.offer(b"hello"), q.offer(b"world"), q.offer(b"!")
    (True, True, False)
    >>> q.written(3); q.pending
    7
    >>> b"".join(q.buffers())
    b'loworld'
    """

    __slots__ = ("_chunks", "_head_offset", "_pending", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"send queue limit must be >= 0, got {limit}")
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._head_offset = 0  # bytes of _chunks[0] already written
        self._pending = 0

    @property
    def pending(self) -> int:
        """Bytes queued: accepted and not yet written."""
        return self._pending

    def __bool__(self) -> bool:
        return self._pending > 0

    def offer(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue all of `data`, or nothing if that would exceed the limit (S7).

        Bringing the queue to exactly `limit` succeeds. Empty data is accepted and queues nothing.
        """
        size = len(data)
        if self._pending + size > self.limit:
            return False
        if size:
            self._chunks.append(bytes(data))  # a private copy: the caller may reuse its buffer
            self._pending += size
        return True

    def buffers(self, max_count: int = MAX_GATHER) -> list[memoryview]:
        """Up to `max_count` views of the oldest queued bytes, in order, for a gather write."""
        views: list[memoryview] = []
        for chunk in self._chunks:
            if len(views) == max_count:
                break
            views.append(memoryview(chunk)[self._head_offset :] if not views else memoryview(chunk))
        return views

    def written(self, n: int) -> None:
        """The kernel took the first `n` queued bytes; drop exactly those (rule 1)."""
        if not 0 <= n <= self._pending:
            raise ValueError(f"written({n}) but only {self._pending} bytes are queued")
        self._pending -= n
        while n:
            head_left = len(self._chunks[0]) - self._head_offset
            if n < head_left:
                self._head_offset += n
                return
            n -= head_left
            self._chunks.popleft()
            self._head_offset = 0

    def clear(self) -> int:
        """Drop everything (an abort); returns how many bytes were dropped."""
        dropped = self._pending
        self._chunks.clear()
        self._head_offset = 0
        self._pending = 0
        return dropped

    def __repr__(self) -> str:
        return f"<SendQueue pending={self._pending} chunks={len(self._chunks)} limit={self.limit}>"
