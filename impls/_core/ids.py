"""Session ids that are never reused (S1).

The OS reuses socket handles at once: close fd 7 and the next accept() returns fd 7 again. An
application that still holds "session 7" from the old connection -- in a queued job, a timer,
a late completion -- would then send to the new player. So the id is not the handle: it is a
64-bit counter. At 4,000 connects a second it lasts 146 million years; a 32-bit one would wrap
after 12 days, which is why the course notes insist on 8 bytes (docs/models/iocp.md).
"""

from __future__ import annotations

__all__ = ["MAX_SESSION_ID", "IdAllocator"]

MAX_SESSION_ID = 2**64 - 1


class IdAllocator:
    """Hands out 1, 2, 3, ... and never the same id twice in its lifetime.

    0 is never issued, so an uninitialised field (0) never names a live session.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def next_id(self) -> int:
        if self._last >= MAX_SESSION_ID:
            # Unreachable in practice (see the module docstring); wrapping would break S1.
            raise OverflowError("64-bit session ids exhausted")
        self._last += 1
        return self._last

    @property
    def issued(self) -> int:
        """How many ids were handed out."""
        return self._last
