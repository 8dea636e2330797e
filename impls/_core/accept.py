"""The one accept back-off every model uses (S6, S10).

Rule: when accept() fails, the error says whether the listener must be left alone for a
while. Out of descriptors (EMFILE, ENFILE; ENOBUFS, ENOMEM: out of kernel memory) the
connection was not taken: it still waits in the backlog, and the listener stays ready. Retry
at once and the server spins a core until a descriptor is freed (S6); wait for a new
readiness edge instead and the waiting connection may never be accepted (S10). So the model
leaves the listener for ACCEPT_RETRY seconds, then accepts again. A connection that failed on
its own (ECONNABORTED: reset before it was accepted; Linux also passes a pending network
error of the new connection, EPROTO and friends) concerns that one connection only: the next
may be waiting, so accept again at once. An error this file does not know backs off too:
a pause costs little, a spin costs a core.

The three ways the models drifted apart before this file (issue 11): one backed off after
ECONNABORTED too, one retried an unknown error at once, one waited for an edge.
"""

from __future__ import annotations

import errno

__all__ = ["ACCEPT_RETRY", "AcceptBackoff", "accept_retry_delay"]

# How long to leave the listener when out of descriptors (trio.serve_listeners waits as long).
ACCEPT_RETRY = 0.1

# Errors of one incoming connection, not of the listener: accept the next at once.
_ONE_CONNECTION = frozenset({
    errno.ECONNABORTED, errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT, errno.EHOSTDOWN,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EOPNOTSUPP, errno.EPERM, errno.EINTR,
})


def accept_retry_delay(error: int | None) -> float:
    """Seconds to leave the listener after accept() failed with errno `error`; 0.0: at once."""
    return 0.0 if error in _ONE_CONNECTION else ACCEPT_RETRY


class AcceptBackoff:
    """One listener's back-off, for the models whose loop must know when to wake for it."""

    __slots__ = ("resume_at",)

    def __init__(self) -> None:
        self.resume_at = 0.0

    def failed(self, error: int | None, now: float) -> float:
        """accept() failed at `now`: the delay (0.0: accept the next at once), remembered."""
        delay = accept_retry_delay(error)
        if delay:
            self.resume_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        """The listener may be used again."""
        return now >= self.resume_at

    def wake_at(self, now: float) -> float | None:
        """When a loop must wake to accept again, if a back-off is running."""
        return self.resume_at if self.resume_at > now else None
