"""Calls into an implementation that may never return."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable

from ._environment import environment_errors

__all__ = ["bounded_call", "stack_of", "stuck_calls"]

# Helper threads of calls that never returned, in this process (see `stuck_calls`).
_stuck: list[threading.Thread] = []


def bounded_call(
    call: Callable[[], object], timeout: float
) -> tuple[object, threading.Thread | None]:
    """Run `call` in a helper thread for at most `timeout` seconds.

    Returns (its result or the exception it raised, None), or (None, the stuck thread) if it
    did not return in time. A stuck call leaves a daemon thread behind: there is no way to
    kill a thread, and reporting the hang beats hanging the run.
    """
    box: list[object] = []

    def target() -> None:
        try:
            box.append(call())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, name="conformance-call", daemon=True)
    with environment_errors("starting a helper thread of the suite"):
        thread.start()
    thread.join(timeout)
    if box:
        return box[0], None
    _stuck.append(thread)
    return None, thread


def stuck_calls() -> list[threading.Thread]:
    """The helper threads of bounded calls that are still stuck in the implementation."""
    return [t for t in _stuck if t.is_alive()]


def stack_of(thread: threading.Thread, depth: int = 8) -> str:
    """The innermost `depth` frames of another thread, formatted."""
    frame = sys._current_frames().get(thread.ident or -1)
    return "".join(traceback.format_stack(frame)[-depth:]) if frame else "(no stack)"
