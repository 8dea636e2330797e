"""How every model starts a session's ending, written once: `_close` tells the core (with the
clock's time and the configured linger) and, if this call began the ending, runs the model's
own `_begin_close`. The core decides everything after that (docs/core.md); the model
performs it through `_seen`, `_send_fin`, `_abort` and `_release`.
"""

from __future__ import annotations

import time
from typing import Generic, Protocol, TypeVar

from conformance.api import ServerConfig
from impls._core import CloseReason, Lifecycle

__all__ = ["Ending"]


class _Living(Protocol):
    life: Lifecycle


S = TypeVar("S", bound=_Living)


class Ending(Generic[S]):
    """Base of the five models: the one `_close`."""

    _config: ServerConfig

    def _close(self, s: S, reason: CloseReason) -> bool:
        """The session must end for `reason` (caller holds the lock); True if this call began
        the ending. A later reason changes nothing -- except a reset, which the core makes end
        the flush at once (S12)."""
        if not s.life.close(reason, time.monotonic(), self._config.linger):
            return False
        self._begin_close(s)
        return True

    def _begin_close(self, s: S) -> None:
        """Get the ending going: wake whoever performs it (each model says how)."""
        raise NotImplementedError
