"""S5: the zero-byte recv. A peer's FIN ends its session -- promptly, and losing nothing.

recv() returning 0 is the only way a TCP server learns that the peer closed. The classic bug
treats 0 as "no data yet" and keeps the session (and its socket, and its slot) forever; the
other classic bug closes at once and drops the reply that on_recv queued for the last
message. The peer here half-closes (SHUT_WR) and keeps reading, so it can tell both apart.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._profiles import suite_settings
from conformance._strategies import chunkings, fault_plans, payloads


@pytest.mark.clause("S5")
@suite_settings()
@given(data=st.one_of(st.just(b""), payloads(max_size=128 << 10)), chunks=chunkings(4096),
       reply=payloads(max_size=64 << 10), faults=fault_plans())
def test_s05_fin_releases_after_delivery_and_flush(conformance, data, chunks, reply, faults):
    """Peer sends, then FIN: every byte reaches on_recv before on_release, the echo and the
    reply queued from the last on_recv reach the peer, then EOF, then release (S5)."""
    replied: set[int] = set()

    def echo_then_reply_once(rec, sid, chunk):
        echo(rec, sid, chunk)
        if len(rec.received(sid)) == len(data) and sid not in replied:
            replied.add(sid)
            rec.send(sid, reply)

    owed = len(data) + len(reply)  # the echo, then the reply
    with conformance.scenario(on_recv=echo_then_reply_once, faults=faults,
                              linger=conformance.timeouts.flush(owed)) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(data, chunks)
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected=f"the peer of {sid} to read every accepted byte, then EOF",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), owed),
                 session_ids=[sid])
        sc.released(sid, clause="S5", why="after the peer's FIN, once the flush was done")
        sc.settle(peer, inbound_complete=True, outbound_complete=True)


@pytest.mark.clause("S5")
@suite_settings()
@given(data=payloads(max_size=4096), idle_peers=st.integers(0, 3))
def test_s05_fin_with_nothing_queued_releases_within_a_second(conformance, data, idle_peers):
    """With nothing queued, on_release follows the FIN within one second (scaled), while
    other sessions stay open (S5)."""
    with conformance.scenario() as sc:
        others = [sc.connect() for _ in range(idle_peers)]
        other_ids = [sc.session(p) for p in others]
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(data)
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.outbox_bytes == 0, clause="S3",
                 expected="the peer's bytes to be taken by the server")
        sc.wait(lambda: len(sc.rec.received(sid)) == len(data), clause="S3",
                expected=f"on_recv to deliver all {len(data)} bytes before the FIN's release",
                actual=lambda: f"{len(sc.rec.received(sid))} bytes delivered",
                session_ids=[sid])
        sc.released(sid, clause="S5", timeout=sc.timeouts.release,
                    why="within one second of the peer's FIN (nothing was queued)")
        gone = [o for o in other_ids if sc.rec.is_released(o)]
        if gone:
            raise sc.fail("S5", "the FIN of one peer to release only its own session",
                          f"sessions {gone} were released too", [sid, *gone])
        sc.settle(peer, inbound_complete=True)
