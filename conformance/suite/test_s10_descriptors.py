"""S10 and S6: accept() fails -- the process is out of file descriptors (EMFILE), or a
connection was reset before it was accepted (ECONNABORTED) -- and the server goes on.

Out of descriptors, accept() takes nothing: the connection waits in the backlog, and the
listener stays readable. The classic bugs: retrying at once (level-triggered, or a proactor
re-posting its accept) burns a core until a descriptor is freed (S6); edge-triggered, waiting
for the next connect's edge strands every connection already waiting, since no new edge comes
for them (S10); treating ECONNABORTED as "stop accepting" strands the rest too.

These faults are injected (`conformance.faults`, for implementations that opt in): a real
EMFILE needs the whole process at its limit, the test's own peers included.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._cpu import measure_busy
from conformance._peers import echoed
from conformance._profiles import suite_settings
from conformance._strategies import fault_plans
from conformance.faults import Fault, FaultPlan, Step
from conformance.suite.test_s06_s07_backpressure import SPIN_FRACTION, SPIN_WINDOW

# How long the process stays out of descriptors in the spin check: the measuring window, and
# half a second more for the time between the first failed accept() and the measurement.
AT_LIMIT = SPIN_WINDOW + 0.5
# S6 at the limit: at most SPIN_FRACTION of a core (as with a stalled peer), and at most this
# many failed accept() calls per second: a back-off of 0.1 s makes ~10
# per accept in progress (an IOCP server keeps 16 posted: ~160), a retry at once ~25,000.
FAILED_ACCEPTS_PER_SECOND = 5_000


@pytest.mark.clause("S6", "S10")
def test_s06_s10_out_of_descriptors_neither_spins_nor_strands(conformance):
    """A client connects while the process is out of descriptors: every accept() fails with
    EMFILE for 1.5 s. Meanwhile the server must not spin: over a second, far less than a core
    and far fewer accept() calls than a retry at once makes (S6). Once descriptors are free,
    it must accept the waiting connection, with no new connect to announce it, and echo
    (S10)."""
    plan = FaultPlan(accept=(Step(Fault.EMFILE, pause=AT_LIMIT),))
    with conformance.scenario(on_recv=echo, faults=plan) as sc:
        faults = sc.faults
        peer = sc.connect()
        if faults is not None:  # the server opted in: it is out of descriptors now
            sc.wait(lambda: faults.injected[Fault.EMFILE.value] > 0, clause="S10",
                    expected="accept() to be called for the connection waiting in the backlog",
                    actual="accept() was not called")
            failed0 = faults.injected[Fault.EMFILE.value]
            busy = measure_busy(SPIN_WINDOW)
            failed = faults.injected[Fault.EMFILE.value] - failed0
            if busy.cores > SPIN_FRACTION \
                    or failed > FAILED_ACCEPTS_PER_SECOND * busy.wall:
                raise sc.fail("S6", f"at most {SPIN_FRACTION:.0%} of one core and "
                              f"{FAILED_ACCEPTS_PER_SECOND} failed accept() calls a second "
                              "while out of descriptors (EMFILE): a back-off between retries",
                              f"{busy} and {failed} failed accept() calls: retried at once")
        sc.wait(lambda: sc.rec.session_of(peer.port, peer.connect_seq) is not None,
                clause="S10", timeout=AT_LIMIT + sc.timeouts.io,
                expected=f"on_connect for the connection from port {peer.port}, which waited "
                f"in the backlog while accept() failed with EMFILE for {AT_LIMIT:g} s",
                actual="it was never accepted (waiting for a new connect's edge?)")
        sid = sc.session(peer)
        peer.queue(b"ping:%d" % sid)
        sc.drive([peer], until=lambda: echoed([peer]), clause="S10",
                 expected=f"session {sid}, accepted after EMFILE, to echo", session_ids=[sid])
        sc.settle(peer)


@pytest.mark.clause("S10")
@suite_settings(weight=0.5)
@given(burst=st.integers(1, 40), faults=fault_plans(accept=True))
def test_s10_burst_accepted_while_accept_fails(conformance, burst, faults):
    """A burst connects while the application is busy in the first on_connect -- to an
    edge-triggered listener, one edge -- and then accept() fails at drawn calls: EMFILE, for
    up to 0.2 s, or ECONNABORTED (fault injection, for implementations that opt in; session
    faults too). Every connection of the burst must be accepted and echo (S10): also the ones
    still waiting in the backlog when accept() failed, with no later connect to announce
    them."""
    gate = threading.Event()
    first: list[int] = []

    def slow_first_connect(rec, sid, _):
        if not first:
            first.append(sid)
            gate.wait(conformance.timeouts.io)  # the application is busy until the test says

    with conformance.scenario(on_connect=slow_first_connect, on_recv=echo, faults=faults) as sc:
        opener = sc.connect()
        sc.session(opener)
        peers = [sc.connect() for _ in range(burst)]  # handshakes done by the kernel
        gate.set()
        ids = [sc.session(p) for p in peers]
        for p, sid in zip(peers, ids, strict=True):
            p.queue(b"ping:%d" % sid)
        sc.drive(peers, until=lambda: echoed(peers), clause="S10",
                 expected=f"all {burst} connections of the burst to be accepted and echo",
                 stall=sc.timeouts.call, session_ids=ids)
        for p in peers:
            sc.settle(p)
