"""S10 and S6: accept() fails -- the process is out of file descriptors (EMFILE), or a
connection was reset before it was accepted (ECONNABORTED) -- and the server goes on.

Out of descriptors, accept() takes nothing: the connection waits in the backlog, and the
listener stays readable. The classic bugs: retrying at once (level-triggered, or a proactor
re-posting its accept) burns a core until a descriptor is freed (S6); edge-triggered, waiting
for the next connect's edge strands every connection already waiting, since no new edge comes
for them (S10); treating ECONNABORTED as "stop accepting" strands the rest too.

These faults are injected (`conformance.faults`, for implementations that opt in): a real
EMFILE needs the whole process at its limit, the test's own peers included.

S10 and S12 past FD_SETSIZE: real descriptors this time. The test holds every number below
1024 in the server's process, so the server's ends of the next connections are numbered 1024
and up, which select() cannot watch. The classic bug: no check, so select() raises and the
loop thread dies with every session on it.
"""

from __future__ import annotations

import os
import resource
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._cpu import measure_busy
from conformance._environment import environment_errors
from conformance._peers import RECHECK, Deadline, Peer, echoed
from conformance._profiles import suite_settings
from conformance._scenario import Scenario
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


# ---- past FD_SETSIZE

# select(2): an fd_set holds descriptors 0 to FD_SETSIZE - 1 (1024 on Linux). A select()
# server cannot watch a socket numbered higher, however few connections it serves.
FD_SETSIZE = 1024
# Connections made while the process holds every descriptor below FD_SETSIZE: the server's
# end of the first gets exactly FD_SETSIZE, of the next ones higher numbers (see below).
PAST_LIMIT_PEERS = 3
# Descriptors the test needs above FD_SETSIZE: its peers' sockets, the server's ends of them,
# the server's own listener, wakeups and pollers, the peers' selector.
HEADROOM = 64


class _HeldDescriptors:
    """Dummy descriptors (/dev/null) that take numbers the way sockets do: lowest free first.

    Holding every free number below FD_SETSIZE makes the next socket of the process get
    FD_SETSIZE or more. The suite's peers live in the same process as the server, so each
    peer gets a hole of its own below the limit first (`free_one_below`): the peer's socket
    takes it, and the server's end of the connection is the one pushed past the limit."""

    def __init__(self) -> None:
        self.below: list[int] = []
        self.above: list[int] = []

    def fill_below(self, limit: int) -> None:
        while True:
            fd = self._open()
            if fd >= limit:
                os.close(fd)
                return
            self.below.append(fd)

    def free_one_below(self) -> None:
        if self.below:
            os.close(self.below.pop())

    def hold_next(self) -> None:
        """Take the lowest free number, so the server's next socket gets a higher one."""
        self.above.append(self._open())

    def close(self) -> None:
        for fd in self.below + self.above:
            os.close(fd)
        self.below.clear()
        self.above.clear()

    @staticmethod
    def _open() -> int:
        with environment_errors("opening /dev/null to hold descriptors below FD_SETSIZE"):
            return os.open(os.devnull, os.O_RDONLY)


def _descriptor_limit_allows(needed: int) -> tuple[int, int] | None:
    """The (soft, hard) RLIMIT_NOFILE to restore if the soft limit must be raised to `needed`;
    None if it is high enough. Skips the test if even the hard limit is lower: the machine's
    limit, not the implementation's fault."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this process may open at most {hard} descriptors (RLIMIT_NOFILE hard "
                    f"limit); holding FD_SETSIZE ({FD_SETSIZE}) needs {needed}")
    return soft, hard


@contextmanager
def _descriptors_held_below(limit: int) -> Iterator[_HeldDescriptors]:
    restore = _descriptor_limit_allows(limit + HEADROOM)
    if restore is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit + HEADROOM, restore[1]))
    held = _HeldDescriptors()
    try:
        held.fill_below(limit)
        yield held
    finally:
        held.close()
        if restore is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, restore)


def _announced_or_refused(sc: Scenario, peer: Peer) -> bool:
    """True once on_connect named `peer`, False once the server closed it without one (EOF
    or reset). Waits on the recorder and polls the peer's socket, opening no descriptor: the
    next number the process hands out must go to the server's end of this connection."""
    poller = select.poll()
    poller.register(peer.sock, select.POLLIN)
    deadline = Deadline(sc.timeouts.io)

    def announced() -> bool:
        return sc.rec.session_of(peer.port, peer.connect_seq) is not None

    while not deadline.expired:
        if sc.rec.wait_for(announced, min(RECHECK, deadline.remaining())):
            return True
        if poller.poll(0):
            peer._read()
            if peer.eof is not None:
                return announced()
    raise sc.fail("S10", f"on_connect for the connection from port {peer.port}, made while "
                  f"the server's process held every descriptor below FD_SETSIZE "
                  f"({FD_SETSIZE}), or a close of it without one (within "
                  f"{sc.timeouts.io:g} s)", "neither came: the connection waits, unannounced")


def _echo(sc: Scenario, peers: list[Peer], *, clause: str, expected: str) -> None:
    ids = [sc.session(p) for p in peers]
    for p, sid in zip(peers, ids, strict=True):
        p.queue(b"ping:%d" % sid)
    sc.drive(peers, until=lambda: echoed(peers), clause=clause, expected=expected,
             session_ids=ids)


@pytest.mark.clause("S10", "S12")
def test_s10_s12_connections_past_fd_setsize(conformance):
    """Clients connect while the server's process holds every descriptor below FD_SETSIZE
    (1024), so the server's ends of their connections are numbered 1024 and up. select()
    cannot watch those: a select() server MAY refuse them (close at once, no on_connect) --
    any other server simply accepts them -- but it MUST NOT die of them. The classic bug: no
    check at all, or `fd == FD_SETSIZE` / a limit off by one; select() then raises
    ValueError, the loop thread dies, and every session with it (S12). Sessions from before
    must keep echoing after each such connect (S12); each such connection is either announced
    and echoes, or closed unannounced (S10); once the descriptors are free again, a new
    client is accepted and echoes (S10).

    The layout is exact: each peer's own socket takes a hole left below the limit, so the
    server's end of the first connection is numbered exactly FD_SETSIZE, and the test then
    holds that number, so the next ones get higher numbers (an off-by-one check lets through
    only one of the two)."""
    _descriptor_limit_allows(FD_SETSIZE + HEADROOM)  # skip before anything starts
    with conformance.scenario(on_recv=echo) as sc:
        before = [sc.connect() for _ in range(2)]
        _echo(sc, before, clause="S10", expected="the sessions from before to echo")
        past: list[Peer] = []
        with _descriptors_held_below(FD_SETSIZE) as held:
            sc.rec.note(f"the test holds every descriptor below {FD_SETSIZE} "
                        f"({len(held.below)} opened)")
            for _ in range(PAST_LIMIT_PEERS):
                held.free_one_below()  # for the peer's own socket
                peer = sc.connect()
                if _announced_or_refused(sc, peer):
                    past.append(peer)
                _echo(sc, before, clause="S12",
                      expected=f"the sessions from before to go on echoing after a connect "
                      f"whose server end is numbered FD_SETSIZE ({FD_SETSIZE}) or above "
                      "(refused or served, it must not stop the server)")
                held.hold_next()
            if past:
                _echo(sc, past, clause="S10", expected="the connections announced past "
                      "FD_SETSIZE to echo")
        sc.rec.note("the test closed its descriptors")
        late = sc.connect()
        _echo(sc, [late], clause="S10", expected="a client that connects once descriptors "
              "are free again to be accepted and echo")
        for p in before + past + [late]:
            sc.settle(p)
