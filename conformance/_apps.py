"""Application behaviours for the recorder's hooks (`Harness.scenario(on_recv=echo)`)."""

from __future__ import annotations

from ._trace import Recorder

__all__ = ["echo"]


def echo(rec: Recorder, session_id: int, data: bytes) -> None:
    """The exercise of every course: send back what arrived, from inside on_recv (S13)."""
    rec.send(session_id, data)
