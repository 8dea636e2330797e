"""How a model calls the application: one guard, so a raising callback ends one session (S12).

Rule: a model never lets an application exception unwind its own I/O thread. It calls every
callback through `run_callback`, and ends the session whose callback raised -- that session
only -- when it returns False.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["run_callback"]

log = logging.getLogger("impls")


def run_callback(callback: Callable[..., None], *args: object) -> bool:
    """Call `callback(*args)`; log and return False if it raised an Exception."""
    try:
        callback(*args)
        return True
    except Exception:
        name = getattr(callback, "__name__", repr(callback))
        log.exception("%s%r raised; closing that session only", name, args[:1])
        return False
