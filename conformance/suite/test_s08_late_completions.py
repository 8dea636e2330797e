"""S8: sessions that end while I/O is in flight never touch another session.

The classic completion-model bug: a session is freed while one of its operations is still
pending; the operation completes later -- into memory that now belongs to the next session,
or for a socket handle that now names the next connection -- and a player receives bytes
meant for someone else. Readiness models have their own version (a stale fd in a ready list).

Here many sessions end at once, in every way a session ends (peer reset, peer half-close,
disconnect(), stop()), while megabytes are in flight both ways. Every byte is stamped with
its session -- session k's bytes are all the byte value k, in both directions -- so a single
byte delivered to the wrong session is caught, whichever way it travelled.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._profiles import suite_settings
from conformance._strategies import fault_plans

ENDINGS = ["reset", "fin", "disconnect", "stop"]


@pytest.mark.clause("S8", "S2")
@suite_settings(weight=0.5)
@given(plan=st.lists(
    st.tuples(st.integers(0, 2 << 20), st.integers(0, 64 << 10), st.sampled_from(ENDINGS),
              st.booleans()),
    min_size=2, max_size=10), faults=fault_plans(resets=True))
def test_s08_sessions_ending_mid_transfer_touch_no_other_session(conformance, plan, faults):
    """Sessions end (RST, FIN, disconnect(), stop()) with bytes in flight both ways; every
    byte anyone receives is its own, no callback follows on_release, stale ids land nowhere
    (S8, S2)."""
    with conformance.scenario(on_recv=echo, linger=0.3, send_queue_limit=8 << 20,
                              faults=faults) as sc:
        peers = [sc.connect(rcvbuf=4096 if not reads else None)
                 for _, _, _, reads in plan]
        ids = [sc.session(p) for p in peers]
        stamp = {sid: k + 1 for k, sid in enumerate(ids)}  # session -> its byte value
        for p, sid, (server_bytes, peer_bytes, _, reads) in zip(peers, ids, plan, strict=True):
            if not reads:
                p.pause_reading()
            sc.send(sid, bytes([stamp[sid]]) * server_bytes)
            p.queue(bytes([stamp[sid]]) * peer_bytes)
        sc.drive(peers, until=lambda: all(p.outbox_bytes == 0 for p in peers), clause="S3",
                 expected="every peer's bytes to be taken", stall=sc.timeouts.call)
        # Now end them, mid-transfer, in the planned ways.
        for p, sid, (_, _, ending, _) in zip(peers, ids, plan, strict=True):
            if ending == "reset":
                p.reset()
            elif ending == "fin":
                p.shut_write()
            elif ending == "disconnect":
                sc.rec.disconnect(sid)
        ended = [sid for sid, (_, _, ending, _) in zip(ids, plan, strict=True)
                 if ending != "stop"]
        for sid in ended:  # flushes that cannot finish abort after linger
            sc.released(sid, clause="S8", timeout=sc.config.linger + sc.timeouts.io,
                        why="after its connection ended mid-transfer")
        for sid in ended:
            if sc.rec.send(sid, b"\xff") or sc.rec.disconnect(sid):
                raise sc.fail("S8", f"send({sid}) and disconnect({sid}) -> False once released",
                              "one returned True", [sid])
        alive = [p for p in peers if not p.closed]
        for p in alive:
            p.resume_reading()
        sc.stop()  # ends the rest, mid-transfer too (S11)
        sc.drive(alive, until=lambda: all(p.eof is not None for p in alive), clause="S8",
                 expected="every connection to end for its peer", stall=sc.timeouts.call)
        for p, sid in zip(peers, ids, strict=True):
            theirs = bytes(set(p.received) - {stamp[sid]})
            if theirs:
                raise sc.fail("S8", f"the peer of {sid} to receive only its own bytes",
                              f"it received bytes of session(s) "
                              f"{sorted(s for s, b in stamp.items() if b in theirs)}", [sid])
            got = set(sc.rec.received(sid)) - {stamp[sid]}
            if got:
                raise sc.fail("S8", f"on_recv for {sid} to carry only its peer's bytes",
                              f"it carried bytes of session(s) "
                              f"{sorted(s for s, b in stamp.items() if b in got)}", [sid])
            sc.settle(p)
