"""S11: stop() releases every session, closes every socket, ends every thread; idempotent.

The harness already requires, at the end of every scenario, that stop() returns within its
deadline and that on_release came for every session before it did. These properties add the
rest: the listener is closed, later calls return False, a second stop() is harmless, and
nothing leaks across start/stop cycles (fds and threads are counted after every cycle, and
only growth that goes on is a leak, so a framework's once-per-process threads and a pool that
fills lazily are not mistaken for leaks).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections import Counter

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._calls import bounded_call
from conformance._checker import ConformanceFailure
from conformance._environment import (
    SuiteEnvironmentError,
    environment_errors,
    hint,
    is_environmental,
)
from conformance._profiles import suite_settings
from conformance._strategies import KERNEL_BUFFERED, fault_plans, payloads
from conformance.faults import FaultPlan, SessionFaults

# The leak rule (see test_s11_no_leaks_across_cycles): the counts have levelled off once
# LEVEL_CYCLES cycles in a row set no new maximum; a leak is growth that has not levelled off
# within MAX_CYCLES cycles.
LEVEL_CYCLES = 3
MAX_CYCLES = 12


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def levelled_off(counts: list[int]) -> bool:
    """No count in the last LEVEL_CYCLES cycles exceeds the highest count before them."""
    if len(counts) <= LEVEL_CYCLES:
        return False
    return max(counts[-LEVEL_CYCLES:]) <= max(counts[:-LEVEL_CYCLES])


@pytest.mark.clause("S11")
@suite_settings()
@given(idle=st.integers(0, 5), busy=st.lists(payloads(max_size=128 << 10), max_size=4),
       faults=fault_plans())
def test_s11_stop_releases_everything_and_closes_the_door(conformance, idle, busy, faults):
    """stop() with idle and busy sessions: all released before it returns (harness), the
    listener refuses connections, send/disconnect -> False, stop() again is harmless (S11)."""
    with conformance.scenario(on_recv=echo, faults=faults) as sc:
        peers = [sc.connect() for _ in range(idle + len(busy))]
        ids = [sc.session(p) for p in peers]
        for p, data in zip(peers[idle:], busy, strict=True):
            p.queue(data)
        sc.drive(peers, until=lambda: all(p.outbox_bytes == 0 for p in peers), clause="S3",
                 expected="the peers' bytes to be taken by the server",
                 stall=sc.timeouts.call, progress=lambda: sum(len(p.sent) for p in peers))
        sc.stop()
        for sid in ids:
            if sc.rec.send(sid, b"after-stop") or sc.rec.disconnect(sid):
                raise sc.fail("S11", f"send({sid}) and disconnect({sid}) -> False after stop()",
                              "one returned True", [sid])
        with environment_errors("creating the probe's socket"):
            probe = socket.socket()
        probe.settimeout(sc.timeouts.io)
        try:
            with environment_errors(f"the probe's connect() to {sc.address}"):
                probe.connect(sc.address)
        except OSError:
            pass  # refused: the listener is closed
        else:
            raise sc.fail("S11", f"stop() to close the listener on {sc.address}",
                          "a new connection was accepted after stop()")
        finally:
            probe.close()
        outcome, stuck = bounded_call(sc.server.stop, sc.timeouts.stop(sc.config))
        if stuck is not None or isinstance(outcome, BaseException):
            raise sc.fail("S11", "a second stop() to return quietly (stop is idempotent)",
                          "it hung" if stuck else f"it raised {outcome!r}")


@pytest.mark.clause("S11")
@suite_settings(weight=0.25)
@given(sessions=st.integers(1, 8))
def test_s11_no_leaks_across_cycles(conformance, sessions):
    """Start/stop cycles with live sessions: the number of open fds and of threads levels off
    (S11). A stop() that forgets a thread or a socket leaves one more after every cycle.

    The rule, for fds and threads alike: both are counted before the first cycle and after
    every cycle. They have levelled off once LEVEL_CYCLES (3) cycles in a row set no new
    maximum -- no count above the highest one before them; that passes. A count that still
    sets a new maximum at least once every LEVEL_CYCLES cycles after MAX_CYCLES (12) cycles
    is a leak. So what a framework creates once per process, and a bounded pool that starts
    its threads lazily (it grows over the first cycles, then stops), are not leaks; a server
    that leaks one thread or fd per start/stop grows every cycle and fails. Counting after
    one warm-up cycle instead would fail a lazily filled pool that is still growing on the
    second cycle -- when this test runs alone, and not in a full run."""

    def cycle() -> None:
        with conformance.scenario(on_recv=echo) as sc:
            peers = [sc.connect() for _ in range(sessions)]
            for p in peers:
                sc.session(p)
                p.queue(b"hello")
            sc.drive(peers, until=lambda: all(len(p.received) == 5 for p in peers),
                     clause="S3", expected="every session to echo once")
        # A program over the wire protocol (exec:) is a process of its own, one per server:
        # the adapter measured it from /proc between STOP's result and EOF on its stdin.
        leftovers = getattr(sc.server, "leftovers_after_stop", None)
        found = leftovers() if callable(leftovers) else None
        if found:
            raise ConformanceFailure(
                "S11", "the program, once it answered STOP, to hold no more sockets and "
                "threads than when it said HELLO (every socket closed, every thread ended)",
                found)

    fds, threads = [open_fds()], [threading.active_count()]
    while len(fds) <= MAX_CYCLES:
        cycle()
        fds.append(open_fds())
        threads.append(threading.active_count())
        if levelled_off(fds) and levelled_off(threads):
            return
    named = Counter(t.name for t in threading.enumerate())
    names = ", ".join(f"{n} x{k}" if k > 1 else n for n, k in sorted(named.items()))
    raise ConformanceFailure(
        "S11", f"the open fds and threads to level off over start/stop cycles (no new maximum "
        f"for {LEVEL_CYCLES} cycles in a row, within {MAX_CYCLES} cycles)",
        f"still growing after {MAX_CYCLES} cycles -- before the first cycle and after each: "
        f"open fds {fds}, threads {threads} (threads now: {names})",
    )


# test_s11_stop_while_connects_keep_arriving: the connecting thread makes at most this many
# connections, one every STORM_GAP seconds, until stop() returns -- enough to keep arriving
# through a stop() that waits out a linger, few enough to leave no pile of TIME_WAIT behind.
STORM_CONNECTS = 150
STORM_GAP = 0.003


class _ConnectStorm:
    """A thread of the suite's own that connects to the server, again and again, holding every
    socket open, until `finish()`. Connections refused (the listener is closed) are counted;
    any other error of its own sockets is the environment's, reported as such."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.socks: list[socket.socket] = []
        self.refused = 0
        self.error: OSError | None = None
        self.first = threading.Event()  # one connect has been made (or failed)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="suite-connect-storm",
                                       daemon=True)

    def _run(self) -> None:
        try:
            for _ in range(STORM_CONNECTS):
                sock = socket.socket()
                self.socks.append(sock)
                # Non-blocking: the thread never waits on the server. A stopping server owes
                # these connections nothing -- refused, reset, or left in a full backlog
                # (EINPROGRESS) -- only that those it announced are released (S11).
                sock.setblocking(False)
                code = sock.connect_ex(self.address)
                if code and is_environmental(OSError(code, os.strerror(code))):
                    self.error = OSError(code, os.strerror(code))
                    return
                if code not in (0, errno.EINPROGRESS):
                    self.refused += 1
                self.first.set()
                if self.done.wait(STORM_GAP):  # a rate, and the end: stop() returned
                    return
        except OSError as exc:  # socket() itself: out of descriptors
            self.error = exc
        finally:
            self.first.set()

    def start(self) -> None:
        with environment_errors("starting the suite's connecting thread"):
            self.thread.start()

    def finish(self) -> None:
        self.done.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()
        if self.error is not None:
            raise SuiteEnvironmentError(
                f"the suite's connecting thread, after {len(self.socks)} connects",
                self.error, hint(self.error))


@pytest.mark.clause("S11", "S10")
@suite_settings(weight=0.5)
@given(idle=st.integers(0, 3), flushing=st.booleans())
@example(idle=1, flushing=True)
def test_s11_stop_while_connects_keep_arriving(conformance, idle, flushing):
    """A thread keeps connecting while stop() runs: stop() still returns within its deadline,
    every session that got on_connect gets on_release before it returns, and no on_connect
    comes after it (S11) -- however the connects and the closing interleave (S10).

    With `flushing`, one session flushes to a peer that stopped reading, so stop() has to wait
    out its linger: a long window for connects to arrive. The classic bugs: releasing the
    sessions first and closing the listener last (whoever connects in between is accepted
    after the release pass and never released), or waiting for "no sessions left" while the
    accept loop still adds them (stop() never returns while clients keep coming).
    """
    linger = 0.3
    backlog = 2 * KERNEL_BUFFERED
    with conformance.scenario(linger=linger, send_queue_limit=backlog) as sc:
        peers = [sc.connect() for _ in range(idle)]
        for p in peers:
            sc.session(p)
        if flushing:
            stalled = sc.connect(rcvbuf=4096)
            sid = sc.session(stalled)
            stalled.pause_reading()
            if not sc.send(sid, b"\0" * backlog):  # twice what the kernel holds
                raise sc.fail("S7", f"send({sid}, {backlog} bytes) -> True with "
                              f"send_queue_limit={backlog}", "it returned False", [sid])
        storm = _ConnectStorm(sc.address)
        storm.start()
        try:
            storm.first.wait(sc.timeouts.io)  # connects are arriving before stop() begins
            sc.stop()  # within its deadline; on_release for every on_connect before it returns
            announced = sum(e.kind.name == "CONNECT" for e in sc.rec.trace())
        finally:
            storm.finish()
        late = [e for e in sc.rec.trace() if e.kind.name == "CONNECT"][announced:]
        if late:
            raise sc.fail("S11", "no on_connect after stop() returned (it closes the listener "
                          "and ends every thread)",
                          f"on_connect({late[0].session_id}) came after it, with "
                          f"{len(storm.socks)} connects made during stop()",
                          [e.session_id for e in late if e.session_id is not None])


@pytest.mark.clause("S11", "S9")
@suite_settings(weight=0.5)
@given(linger=st.sampled_from([0.005, 0.2]), faults=fault_plans())
@example(linger=0.005, faults=FaultPlan((SessionFaults(hold=(0.02,) * 4),)))
def test_s11_stop_aborts_a_stalled_flush_under_faults(conformance, linger, faults):
    """stop() with a session flushing to a peer that never reads, under fault injection
    (short sends, completions held back): stop() flushes for at most linger, aborts, and
    returns with the session released (S11, S9).

    A linger shorter than a hold makes the abort come while a completed send is still on its
    way back; the classic proactor bug re-posts the rest of the queue when it arrives, on the
    aborted socket, and stop() then waits forever for that operation's completion.
    """
    backlog = 2 * KERNEL_BUFFERED  # twice what the kernel holds: the flush cannot finish
    with conformance.scenario(linger=linger, send_queue_limit=backlog, faults=faults) as sc:
        peer = sc.connect(rcvbuf=4096)
        sid = sc.session(peer)
        peer.pause_reading()
        if not sc.send(sid, b"\0" * backlog):
            raise sc.fail("S7", f"send({sid}, {backlog} bytes) -> True with "
                          f"send_queue_limit={backlog}", "it returned False", [sid])
        sc.stop()  # within linger plus its deadline; on_release before it returns
        peer.resume_reading()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S11",
                 expected="the aborted connection to end (EOF or reset) for the peer",
                 session_ids=[sid])
        sc.settle(peer)
