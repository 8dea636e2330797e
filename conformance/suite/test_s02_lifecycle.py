"""S2: per id, on_connect, then on_recv*, then on_release exactly once -- never overlapping.

The property runs several peers at once, each with a generated life: it sends some tagged
data, then ends in one of the ways a connection ends (FIN, reset, the server's disconnect(),
or nothing -- stop() ends it). The application echoes from inside on_recv. Whatever the mix,
the trace checker must find every session's callbacks in order, none overlapping, none after
on_release; stop() must have released the ones still open.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._profiles import suite_settings
from conformance._strategies import fault_plans, make_payload, tagged
from conformance.faults import Fault, FaultPlan, SessionFaults, Step

ENDINGS = ["fin", "reset", "disconnect", "stop"]


@pytest.mark.clause("S2", "S3")
@suite_settings()
@given(lives=st.lists(st.tuples(st.integers(0, 50_000), st.sampled_from(ENDINGS)),
                      min_size=1, max_size=8), faults=fault_plans())
# A readiness that was spurious: the first recv would block. Not an ending (S2) -- the classic
# `if (n <= 0) close` -- and random plans draw it at the right call only most of the time.
@example(lives=[(1000, "fin")],
         faults=FaultPlan((SessionFaults(recv=(Step(Fault.WOULD_BLOCK),)),)))
def test_s02_callbacks_in_order_whatever_the_ending(conformance, lives, faults):
    """Concurrent sessions with generated endings: on_connect, on_recv*, on_release once,
    never overlapping, nothing after release (S2); the data is each peer's own (S3). Also
    under injected faults, which hit the endings at the least convenient call."""
    with conformance.scenario(on_recv=echo, faults=faults) as sc:
        peers = [sc.connect() for _ in lives]
        ids = [sc.session(p) for p in peers]
        for p, sid, (size, _) in zip(peers, ids, lives, strict=True):
            p.queue(tagged(sid, size))
        sc.drive(peers, until=lambda: all(p.outbox_bytes == 0 for p in peers), clause="S3",
                 expected="every peer's bytes to be taken by the server",
                 stall=sc.timeouts.call, progress=lambda: sum(len(p.sent) for p in peers))
        for p, sid, (size, ending) in zip(peers, ids, lives, strict=True):
            sc.wait(lambda sid=sid, size=size: len(sc.rec.received(sid)) >= size, clause="S3",
                    expected=f"on_recv to deliver the {size} bytes the peer of {sid} sent",
                    actual=lambda sid=sid: f"{len(sc.rec.received(sid))} bytes delivered",
                    session_ids=[sid], stall=sc.timeouts.call,
                    progress=lambda sid=sid, size=size: min(len(sc.rec.received(sid)), size))
            if ending == "fin":
                p.shut_write()
            elif ending == "reset":
                p.reset()
            elif ending == "disconnect" and not sc.rec.disconnect(sid):
                raise sc.fail("S9", f"disconnect({sid}) -> True for a live session",
                              "it returned False", [sid])
        ended = [sid for sid, (_, ending) in zip(ids, lives, strict=True) if ending != "stop"]
        for sid in ended:
            sc.released(sid, clause="S2", why="after its connection ended")
        for p in peers:
            sc.settle(p, inbound_complete=True)  # each waited for above


@pytest.mark.clause("S2", "S3", "S4")
@suite_settings(weight=0.5)
@given(size=st.integers(256 << 10, 1 << 20), slow=st.sampled_from([0.001, 0.003]),
       seed=st.integers(0, 2**16))
def test_s02_slow_application_callbacks_never_overlap(conformance, size, slow, seed):
    """An application that takes milliseconds per on_recv, while the peer keeps data coming:
    the next receive may complete meanwhile, but its on_recv must wait for this one (S2) --
    with a pool of workers, that is the implementation's job, not the kernel's.

    How long the echo takes is the implementation's choice (a server reading 512 bytes at a
    time makes two thousand slow calls per megabyte), so only progress is bounded: bytes
    that stop reaching on_recv fail S3, an echo that stops reaching the peer fails S4."""

    def slow_echo(rec, sid, data):
        time.sleep(slow)  # the application is slow on purpose (a database call, say)
        echo(rec, sid, data)

    with conformance.scenario(on_recv=slow_echo, send_queue_limit=2 * size) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(make_payload(size, seed), [4096])
        sc.drive([peer], until=lambda: len(sc.rec.received(sid)) >= size, clause="S3",
                 expected=f"on_recv to deliver the {size} bytes the peer sent, through a slow "
                 "application", stall=sc.timeouts.io,
                 progress=lambda: min(len(sc.rec.received(sid)), size), session_ids=[sid])
        sc.drive([peer], until=lambda: len(peer.received) >= size, clause="S4",
                 expected=f"the peer to receive the echo of {size} bytes",
                 stall=sc.timeouts.io, progress=lambda: min(len(peer.received), size),
                 session_ids=[sid])
        sc.check()  # S2's overlap check, before anything else happens
        sc.settle(peer, inbound_complete=True)
