"""S9: disconnect() flushes what was accepted, then closes; a peer that never reads is aborted
once linger expires; on_release follows exactly once either way.

The classic bugs: closing the socket at once and dropping the queued reply ("the goodbye
message never arrives"), or waiting forever for a peer that will never read.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conformance._profiles import suite_settings
from conformance._strategies import KERNEL_BUFFERED, fault_plans, payloads
from conformance.faults import FaultPlan, SessionFaults


@pytest.mark.clause("S9")
@suite_settings()
@given(queued=st.lists(payloads(max_size=256 << 10), max_size=4), faults=fault_plans())
def test_s09_disconnect_flushes_then_closes(conformance, queued, faults):
    """send() x N, disconnect(): True once, then False; send() -> False; the reading peer gets
    every accepted byte, then EOF; on_release once (S9)."""
    owed = sum(map(len, queued))
    with conformance.scenario(send_queue_limit=owed + 1, faults=faults,
                              linger=conformance.timeouts.flush(owed)) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        for data in queued:
            if not sc.rec.send(sid, data):
                raise sc.fail("S7", f"send({sid}, {len(data)} bytes) -> True under the limit",
                              "it returned False", [sid])
        if not sc.rec.disconnect(sid):
            raise sc.fail("S9", f"disconnect({sid}) -> True for a live session",
                          "it returned False", [sid])
        if sc.rec.disconnect(sid):
            raise sc.fail("S9", f"a second disconnect({sid}) -> False", "it returned True", [sid])
        if sc.rec.send(sid, b"too-late"):
            raise sc.fail("S9", f"send({sid}) -> False after disconnect({sid})",
                          "it returned True", [sid])
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S9",
                 expected=f"the peer of {sid} to read the flushed bytes, then EOF",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), owed),
                 session_ids=[sid])
        sc.released(sid, clause="S9", why="after disconnect() and the flush")
        accepted = sc.rec.accepted(sid)
        if bytes(peer.received) != accepted:
            raise sc.fail("S9", f"the {len(accepted)} bytes accepted before disconnect() to be "
                          "flushed before the close", f"the peer got {len(peer.received)} bytes, "
                          f"then {peer.eof}", [sid])
        sc.settle(peer, outbound_complete=peer.eof == "EOF")
        if peer.eof != "EOF":
            raise sc.fail("S9", "a graceful close (FIN) for a peer that reads and sends nothing",
                          f"the peer saw {peer.eof}", [sid])


# A linger shorter than the faults' longest hold (20 ms): the abort comes while a send's
# completion is still held back, and that completion is handled after the abort.
SHORT_LINGER = 0.005


@pytest.mark.clause("S9")
@suite_settings(weight=0.5)
@given(linger=st.sampled_from([SHORT_LINGER, 0.2, 0.5]), faults=fault_plans())
@example(linger=SHORT_LINGER, faults=FaultPlan((SessionFaults(hold=(0.02,) * 4),)))
def test_s09_disconnect_aborts_after_linger(conformance, linger, faults):
    """A peer that never reads: after disconnect() the session is released within linger
    (plus slack), not held forever (S9).

    Under fault injection too: short sends, and completions held back (`fault_plans`). With
    a linger shorter than a hold, the abort comes while a send that succeeded is still on
    its way back; when it arrives, nothing may be sent on the aborted socket any more -- a
    proactor that re-posts the rest of the queue (SendPost after a completion, as usual)
    writes into a dead connection until the window closes, and its IOCount never reaches
    zero: the session is never released, and stop() hangs on it.
    """
    with conformance.scenario(linger=linger, send_queue_limit=2 * KERNEL_BUFFERED,
                              faults=faults) as sc:
        peer = sc.connect(rcvbuf=4096)
        sid = sc.session(peer)
        peer.pause_reading()
        sc.send(sid, b"\0" * (2 * KERNEL_BUFFERED))
        if not sc.rec.disconnect(sid):
            raise sc.fail("S9", f"disconnect({sid}) -> True", "it returned False", [sid])
        sc.released(sid, clause="S9", timeout=linger + sc.timeouts.io,
                    why=f"once linger ({linger} s) expired with the peer not reading")
        peer.resume_reading()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S9",
                 expected="the aborted connection to end (EOF or reset) for the peer",
                 session_ids=[sid])
        sc.settle(peer)
