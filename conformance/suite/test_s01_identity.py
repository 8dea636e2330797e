"""S1 and S8: ids are never reused, and a stale id lands nowhere.

The OS hands a freed socket handle to the very next connection, so a server that uses the
handle as the session id gives two players the same id, and a send() queued for the one who
left reaches the one who came. The property churns through thousands of connections (the
handles are reused many times over), checks every id is fresh, and after each wave aims
send() and disconnect() at the ids that just died: they must return False, and the witness
peer that stays connected, like every later peer, must never see those bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._profiles import suite_settings
from conformance._strategies import tagged

STALE = b"STALE-SEND-MUST-LAND-NOWHERE"


@pytest.mark.clause("S1", "S8")
@suite_settings(weight=0.25)
@given(waves=st.integers(10, 25), wave_size=st.integers(30, 80),
       resets=st.lists(st.booleans(), min_size=1, max_size=8))
def test_s01_ids_fresh_and_stale_ids_land_nowhere(conformance, waves, wave_size, resets):
    """Thousands of connect/close cycles: every id fresh (S1); send/disconnect on the ids of
    released sessions return False and reach no other peer (S8)."""
    with conformance.scenario() as sc:
        witness = sc.connect()
        witness_id = sc.session(witness)
        seen: set[int] = {witness_id}
        for w in range(waves):
            peers = [sc.connect() for _ in range(wave_size)]
            ids = [sc.session(p) for p in peers]
            if seen.intersection(ids) or len(set(ids)) < len(ids):
                sc.check()  # the trace checker names the reused id (S1)
            seen.update(ids)
            for i, (p, sid) in enumerate(zip(peers, ids, strict=True)):
                if resets[i % len(resets)]:
                    p.reset()
                else:
                    p.queue(tagged(sid, 8))
                    p.shut_write()
            sc.drive(peers, until=lambda ps=peers: all(p.closed or p.eof for p in ps),
                     clause="S5", expected=f"wave {w}: every peer to see its session end")
            for sid in ids:
                sc.released(sid, clause="S5", why="after its peer closed or reset")
            for sid in ids:
                if sc.rec.send(sid, STALE) or sc.rec.disconnect(sid):
                    raise sc.fail("S8", f"send({sid}) and disconnect({sid}) -> False: "
                                  f"session {sid} was released", "one returned True", [sid])
            for p in peers:
                p.close(quiet=True)
        sc.rec.send(witness_id, b"END")
        sc.drive([witness], until=lambda: b"END" in witness.received, clause="S4",
                 expected="the witness peer to receive its own b'END'",
                 session_ids=[witness_id])
        if STALE in witness.received:
            raise sc.fail("S8", "no stale send to reach the witness session",
                          "the witness peer received a stale send", [witness_id])
        sc.settle(witness)


@pytest.mark.clause("S8")
@suite_settings()
@given(unknown=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_s08_unknown_ids_return_false(conformance, unknown):
    """send() and disconnect() with ids never issued return False and disturb nobody (S8)."""
    with conformance.scenario() as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        for bogus in unknown:
            if bogus == sid:
                continue
            if sc.rec.send(bogus, STALE) or sc.rec.disconnect(bogus):
                raise sc.fail("S8", f"send({bogus}) and disconnect({bogus}) -> False for an "
                              "id never issued", "one returned True", [sid])
        if not sc.rec.send(sid, b"still-here"):
            raise sc.fail("S8", f"the live session {sid} to accept send()", "send() -> False",
                          [sid])
        sc.drive([peer], until=lambda: len(peer.received) >= len(b"still-here"), clause="S4",
                 expected="the live peer to receive its own bytes only", session_ids=[sid])
        sc.settle(peer)
