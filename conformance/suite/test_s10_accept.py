"""S10: a burst of simultaneous connects is accepted in full, even while other sessions are
busy or stalled.

The classic bugs: accept() called once per readiness event (edge-triggered: the rest of the
burst waits forever), or an accept loop that is starved by a session that is never drained.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._peers import echoed
from conformance._profiles import suite_settings
from conformance._strategies import KERNEL_BUFFERED
from conformance.api import LISTEN_BACKLOG


@pytest.mark.clause("S10")
@suite_settings(weight=0.5)
@given(burst=st.integers(2, LISTEN_BACKLOG))
def test_s10_burst_that_arrives_while_the_server_is_busy(conformance, burst):
    """The first session's on_connect takes a while (the application loads a profile, say);
    meanwhile a burst connects and waits in the backlog -- to an edge-triggered listener, one
    edge. Once on_connect returns, every connection of the burst must be accepted (S10).

    The whole burst waits in the listen backlog, so this is what needs one of
    LISTEN_BACKLOG (100): with less, the connects beyond it time out and S10 fails, naming
    the backlog."""
    gate = threading.Event()
    first: list[int] = []

    def slow_first_connect(rec, sid, _):
        if not first:
            first.append(sid)
            # The application is busy until the test says (bounded only in case the test
            # thread dies): a connect() beyond the backlog must time out while it still is.
            gate.wait(conformance.timeouts.scenario)

    with conformance.scenario(on_connect=slow_first_connect, on_recv=echo) as sc:
        opener = sc.connect()
        try:  # whatever fails, the application is no longer busy after this block
            sc.session(opener)
            peers = [sc.connect() for _ in range(burst)]  # handshakes done by the kernel
        finally:
            gate.set()
        ids = [sc.session(p) for p in peers]
        for p, sid in zip(peers, ids, strict=True):
            p.queue(b"ping:%d" % sid)
        sc.drive(peers, until=lambda: echoed(peers), clause="S10",
                 expected=f"all {burst} connections of the burst to be accepted and echo")
        for p in peers:
            sc.settle(p)


@pytest.mark.clause("S10")
@suite_settings(weight=0.5)
@given(burst=st.integers(1, 300), stalled=st.booleans())
def test_s10_burst_accepted_while_others_are_stalled(conformance, burst, stalled):
    """Connect `burst` peers at once (the kernel queues them in the backlog), with one session
    stalled on a full queue: every one gets on_connect and can echo (S10). The server
    accepts while the burst arrives, so the backlog need not hold all of it; one that fills
    holds back a connect by a SYN retry (a second), well within the deadline."""
    with conformance.scenario(on_recv=echo, send_queue_limit=KERNEL_BUFFERED) as sc:
        if stalled:
            slow = sc.connect(rcvbuf=4096)
            slow_id = sc.session(slow)
            slow.pause_reading()
            sc.fill_queue(slow_id)
        peers = [sc.connect() for _ in range(burst)]
        ids = [sc.session(p) for p in peers]
        for p, sid in zip(peers, ids, strict=True):
            p.queue(b"ping:%d" % sid)
        sc.drive(peers, until=lambda: echoed(peers), clause="S10",
                 expected=f"all {burst} newly accepted sessions to echo")
        for p in peers:
            sc.settle(p)
