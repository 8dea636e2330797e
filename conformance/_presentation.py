"""How a failure reads: each failure printed once, without stdlib frames between the test
and the suite's hidden ones, and a hint for the command that only works in a checkout.

The plugin calls these from its hooks; they change how a failure is shown, never its verdict.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["installed_suite_hint", "once", "tidy"]

# `Harness.scenario` is a @contextmanager: a failure raised when the `with` block ends passes
# through contextlib's __exit__, whose source pytest would print as if it were the error
# (the scenario's own frames hide themselves with __tracebackhide__).
_HIDDEN_FILES = frozenset({os.path.normcase(os.path.abspath(contextlib.__file__))})


def _hidden(tb: TracebackType, marked: bool) -> bool:
    """`marked`: also the frames that hide themselves (`__tracebackhide__`), for pytest
    prints the members of an exception group as Python does, without its own filter."""
    if os.path.normcase(os.path.abspath(tb.tb_frame.f_code.co_filename)) in _HIDDEN_FILES:
        return True
    return marked and bool(tb.tb_frame.f_locals.get("__tracebackhide__"))


def _pruned(tb: TracebackType | None, marked: bool = False) -> TracebackType | None:
    while tb is not None and _hidden(tb, marked):
        tb = tb.tb_next
    entry = tb
    while entry is not None:
        after = entry.tb_next
        while after is not None and _hidden(after, marked):
            after = after.tb_next
        entry.tb_next = after
        entry = after
    return tb


# Hypothesis' FlakyFailure (a failure that did not repeat when replayed) carries the failure
# as its sub-exception, and again, as text, in this note.
_REPEATED_NOTE = "Failed to reproduce exception. Expected:"


def tidy(exc: BaseException | None) -> None:
    """Before pytest formats a failure of the suite: no stdlib frames, no repeated text."""
    without_stdlib_frames(exc)
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        notes = getattr(exc, "__notes__", None)
        if notes:
            exc.__notes__ = [n for n in notes if not n.startswith(_REPEATED_NOTE)]


def without_stdlib_frames(exc: BaseException | None, in_group: bool = False) -> None:
    """Drop contextlib's frames from the tracebacks of `exc`, the exceptions chained to it
    and the members of a group. The first entry of `exc`'s own traceback is pytest's (it
    caught it), so the traceback object pytest holds stays the head and sees the change."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = _pruned(exc.__traceback__, in_group)
        if isinstance(exc, BaseExceptionGroup):
            for member in exc.exceptions:
                without_stdlib_frames(member, in_group=True)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def once(exc: BaseException) -> BaseException | None:
    """What to show for a failure that the harness wrapped (`ShrinkingStopped`,
    `ServerWedged`): the scenario's own failure, with its traceback, and the wrapper's words
    as a note -- instead of the failure, then the wrapper repeating it. None: show `exc`.

    The verdict still comes from `exc` (a ServerWedged also charges the hung call's clause).
    """
    failure = getattr(exc, "failure", None)
    if not isinstance(failure, BaseException) or failure is exc:
        return None
    text = str(exc)
    said = f"{failure}\n\n"
    note = f"{type(exc).__name__}: {text[len(said):] if text.startswith(said) else text}"
    if note not in getattr(failure, "__notes__", ()):
        failure.add_note(note)
    failure.__traceback__ = _spliced(exc.__traceback__, failure.__traceback__)
    return failure


def _spliced(outer: TracebackType | None, inner: TracebackType | None) -> TracebackType | None:
    """`outer`'s entries (from pytest down to the test) up to the first frame that `inner`
    has too, then `inner`: the failure's own traceback stops where the harness caught it,
    inside the scenario, so on its own it would not even show the test's line."""
    frames = set()
    entry = inner
    while entry is not None:
        frames.add(id(entry.tb_frame))
        entry = entry.tb_next
    head: list[TracebackType] = []
    entry = outer
    while entry is not None and id(entry.tb_frame) not in frames:
        head.append(entry)
        entry = entry.tb_next
    tb = inner
    for e in reversed(head):
        tb = TracebackType(tb, e.tb_frame, e.tb_lasti, e.tb_lineno)
    return tb


def installed_suite_hint(args: Sequence[str], invocation_dir: Path) -> list[str] | None:
    """For `pytest conformance ...` outside a checkout of io-conformance: there the suite is
    a package (`--pyargs`), not a path. The error lines, or None if every path exists.
    (Checked at startup: under xdist, pytest's own "not found" is lost in the workers.)"""
    for arg in args:
        path = arg.split("::")[0]
        if path.rstrip("/").split("/")[0] == "conformance" and not (invocation_dir / path).exists():
            return [
                f"file or directory not found: {arg}",
                "io-conformance is installed here as the package 'conformance', not a "
                "directory: run `pytest --pyargs conformance --impl=...` (the path form "
                "`pytest conformance` works in a checkout of io-conformance).",
            ]
    return None
