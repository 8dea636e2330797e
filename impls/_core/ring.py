"""A fixed-size ring of bytes: the receive buffer a RecvPost lends to the kernel.

Rule 1: the free space is handed out as at most two segments, in order -- the end of the
array, then its start when the ring wraps. That is the WSABUF[2] of the course notes
(docs/models/iocp.md): one WSARecv (here recvmsg_into) fills both, so a wrapped ring costs no
extra call.
Rule 2: between `free_segments()` and `commit(n)` the segments belong to the kernel (an
operation is pending on them); nothing else may write them.
"""

from __future__ import annotations

__all__ = ["RingBuffer"]


class RingBuffer:
    """`capacity` bytes; `len()` of them hold received data not yet taken. Not thread-safe.

    >>> r = RingBuffer(8)
    >>> [bytes(s) for s in r.free_segments()] == [bytes(8)]
    True
    >>> r.free_segments()[0][:6] = b"abcdef"; r.commit(6); r.take()
    b'abcdef'
    >>> [len(s) for s in r.free_segments()]  # wraps: 2 at the end, then 6 at the start
    [2, 6]
    """

    __slots__ = ("_buf", "_head", "_size", "_view")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be > 0, got {capacity}")
        self._buf = bytearray(capacity)
        self._view = memoryview(self._buf)
        self._head = 0  # where the oldest held byte is
        self._size = 0  # how many bytes are held

    @property
    def capacity(self) -> int:
        return len(self._buf)

    def __len__(self) -> int:
        return self._size

    def free_segments(self) -> list[memoryview]:
        """The free space as one or two writable views, in the order they will be filled."""
        cap = len(self._buf)
        free = cap - self._size
        if free == 0:
            return []
        tail = (self._head + self._size) % cap
        first = min(free, cap - tail)
        segments = [self._view[tail : tail + first]]
        if free > first:
            segments.append(self._view[: free - first])
        return segments

    def commit(self, n: int) -> None:
        """The kernel wrote `n` bytes into the free segments, in order."""
        if not 0 <= n <= len(self._buf) - self._size:
            raise ValueError(f"commit({n}) but only {len(self._buf) - self._size} bytes free")
        self._size += n

    def take(self) -> bytes:
        """Every held byte, oldest first, as a copy; the ring is empty afterwards."""
        cap = len(self._buf)
        end = self._head + self._size
        if end <= cap:
            data = bytes(self._view[self._head : end])
        else:
            data = bytes(self._view[self._head :]) + bytes(self._view[: end - cap])
        self._head = end % cap
        self._size = 0
        return data
