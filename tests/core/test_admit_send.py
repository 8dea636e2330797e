"""send()'s shared rule (impls/_core/lifecycle.py admit_send): S7 and S8 in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from impls._core import CloseReason, Lifecycle, SendQueue, admit_send


@dataclass
class Record:
    queue: SendQueue = field(default_factory=lambda: SendQueue(10))
    life: Lifecycle = field(default_factory=Lifecycle)


def test_s8_unknown_id_is_refused():
    assert not admit_send(None, b"x")


def test_s8_closing_session_is_refused_and_queues_nothing():
    r = Record()
    r.life.close(CloseReason.DISCONNECT, 0.0, 1.0)
    assert not admit_send(r, b"x")
    assert r.queue.pending == 0


def test_s7_over_the_limit_is_refused_up_to_it_accepted():
    r = Record()
    assert admit_send(r, b"x" * 10)  # exactly the limit
    assert not admit_send(r, b"y")  # one more byte would exceed it
    assert r.queue.pending == 10


def test_s4_empty_send_to_a_live_session_is_accepted():
    r = Record()
    r.life.connected()
    assert admit_send(r, b"") and r.queue.pending == 0
