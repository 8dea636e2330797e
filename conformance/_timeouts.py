"""The deadlines of the suite: every wait of a scenario is bounded by one of these.

Each is generous on purpose and scaled by `--conformance-timeout-scale`; a deadline that passes
fails the scenario naming the clause and what was awaited (see `_scenario.Scenario`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .api import ServerConfig

__all__ = ["FLUSH_RATE", "Timeouts"]

# Bytes a second that `Timeouts.flush` allows a flush to a reading peer (at scale 1).
FLUSH_RATE = 1 << 20


@dataclass(frozen=True)
class Timeouts:
    """Every deadline of the suite, in seconds, at `scale` 1. Generous on purpose: a correct
    implementation meets each one by orders of magnitude, so only a real bug trips them."""

    scale: float = 1.0

    def _s(self, seconds: float) -> float:
        return seconds * self.scale

    @property
    def start(self) -> float:
        return self._s(5.0)

    def stop(self, config: ServerConfig) -> float:
        """stop() may flush for `linger` before it aborts."""
        return self._s(5.0) + config.linger

    @property
    def release(self) -> float:
        """S5: with nothing queued, on_release follows the peer's FIN within one second."""
        return self._s(1.0)

    @property
    def io(self) -> float:
        """Any exchange of data on loopback: megabytes take milliseconds, so this is a
        hundredfold margin. It is also how long a failing example waits for bytes that were
        lost, and Hypothesis replays failing examples while it shrinks them."""
        return self._s(5.0)

    @property
    def call(self) -> float:
        """send() and disconnect() must return at once (S6, S13): microseconds, normally."""
        return self._s(2.0)

    @property
    def scenario(self) -> float:
        """The watchdog: how long the test thread may spend outside the harness's own bounded
        waits (connects, drive, wait, start() and stop()) -- in calls into the implementation
        and the test's own code. The waits are bounded each by its own deadline or stall, so
        the whole scenario is bounded by a sum that grows with its work."""
        return self._s(60.0)

    def flush(self, nbytes: int) -> float:
        """A `linger` under which a flush of `nbytes` to a peer that reads as fast as it can
        always completes: the I/O deadline plus FLUSH_RATE bytes a second, a thousandfold
        below loopback. For scenarios that require every accepted byte to arrive; a flush
        that stops moving is caught by a stall long before this."""
        return self.io + self._s(nbytes / FLUSH_RATE)
