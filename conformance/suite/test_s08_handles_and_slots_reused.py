"""S1, S8, S9: whatever is left of a session -- its id, its timer -- while a newcomer holds the
handle or the slot it had.

A released session leaves things behind: ids the application still holds, a linger timer that
was armed when its close began. A server that finds a session through the socket handle (fd)
or the pool slot the id once named goes wrong only once somebody new holds that handle or
slot: then the stale send() lands in a newcomer's stream, the stale disconnect() closes a
newcomer, the old timer aborts a newcomer's flush. Aimed while the handles and slots are free
(as `test_s01_identity` does between whole waves), the same lookups find nothing and the bug
stays hidden. So these properties aim them while newcomers hold them.

How a newcomer gets an old handle or slot: the OS gives a released fd to the next socket the
process makes -- which may be the test's own client socket of the next connection, so the
properties connect many newcomers for each one that leaves. A session pool (impls/_core/pool.py)
gives a freed slot to the next session (its free list is last-in, first-out).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._peers import Peer
from conformance._profiles import suite_settings
from conformance._scenario import Scenario
from conformance._strategies import KERNEL_BUFFERED, fault_plans, make_payload, tagged
from conformance.faults import FaultPlan, SessionFaults

STALE = b"STALE-SEND-MUST-LAND-NOWHERE"
ENDINGS = ["close", "reset", "disconnect"]
# Long enough for the next round's first session to be accepted while a completion is held
# (milliseconds, on a loaded machine tens of them); short enough to cost little.
LATE_HOLD = 0.25
# How many of the sessions that left last a failure's timeline shows besides the victim.
RECENT = 4


@pytest.mark.clause("S8", "S1")
@suite_settings()
@given(rounds=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 30),
                                 st.sampled_from(ENDINGS), st.booleans()),
                       min_size=2, max_size=8),
       faults=fault_plans())
# A disconnect()ed session's cancelled recv completes only after the next session took its
# slot: every session's first completion is held back LATE_HOLD.
@example(rounds=[(2, 1, "disconnect", False), (1, 0, "close", False)],
         faults=FaultPlan((SessionFaults(hold=(LATE_HOLD,)),)))
def test_s08_stale_ids_while_newcomers_hold_their_handles(conformance, rounds, faults):
    """Waves overlap: each round some sessions arrive, then stale ids are fired while they
    (and older sessions) are connected, then some of the connected end -- by the peer's
    close, its reset or disconnect(). Every id is fresh (S1); every stale send() and
    disconnect() returns False, its bytes reach no peer and it closes nobody: at the end
    every session still connected echoes its own bytes and nothing else (S8). Under fault
    injection a proactor's completions may be held back, so the operation a session's end
    cancelled may complete only once a newcomer holds its handle or slot: it too must find
    nothing.

    The classic bugs: send(id) looks the session up through something the id once named --
    the socket handle (an id -> fd map next to the fd -> session table), or the pool slot
    without its generation -- and finds whoever holds that handle or slot now. Or a
    completion port's key is the pool slot and a session is released before its cancelled
    recv has completed: the late completion is taken as the newcomer's.
    """
    with conformance.scenario(on_recv=echo, faults=faults) as sc:
        live: list[tuple[Peer, int]] = []
        seen: set[int] = set()
        stale: list[int] = []
        for r, (arrivals, leavers, ending, newest_first) in enumerate(rounds):
            arrived = _one_by_one(sc, arrivals)
            ids = [sc.session(p) for p in arrived]
            if seen.intersection(ids) or len(set(ids)) < len(ids):
                sc.check()  # the trace checker names the reused id (S1)
            seen.update(ids)
            live += zip(arrived, ids, strict=True)
            # The newcomers now hold the handles and slots the stale ids once had.
            _fire_stale(sc, stale, f"round {r}")
            _still_open(sc, live, f"round {r}", stale)
            order = live[::-1] if newest_first else live
            leaving = order[:min(leavers, len(live) - 1)]  # someone always stays
            _end(sc, leaving, ending, f"round {r}")
            gone = {sid for _, sid in leaving}
            live = [(p, sid) for p, sid in live if sid not in gone]
            stale += [sid for _, sid in leaving]
        _fire_stale(sc, stale, "the end")
        _still_theirs(sc, live, stale)


def _fire_stale(sc: Scenario, stale: list[int], when: str) -> None:
    """send() and disconnect() on every released id: each must return False (S8)."""
    for sid in stale:
        if sc.rec.send(sid, STALE):
            raise sc.fail("S8", f"{when}: send({sid}, ...) -> False: session {sid} was "
                          "released (newer sessions may hold the handle or slot it had)",
                          "it returned True", [sid])
        if sc.rec.disconnect(sid):
            raise sc.fail("S8", f"{when}: disconnect({sid}) -> False: session {sid} was "
                          "released (newer sessions may hold the handle or slot it had)",
                          "it returned True", [sid])


def _end(sc: Scenario, leaving: list[tuple[Peer, int]], ending: str, when: str) -> None:
    """End these sessions the planned way and wait for their release; close their peers, so
    the next connections reuse the handles (fds) on both sides."""
    peers = [p for p, _ in leaving]
    for p, sid in leaving:
        if ending == "reset":
            p.reset()
        elif ending == "close":
            p.shut_write()
        elif not sc.rec.disconnect(sid):
            raise sc.fail("S9", f"{when}: disconnect({sid}) -> True for a live session",
                          "it returned False (had a stale send() or disconnect() closed it?)",
                          [sid])
    open_peers = [p for p in peers if not p.closed]
    sc.drive(open_peers, until=lambda: all(p.eof is not None for p in open_peers),
             clause="S5", expected=f"{when}: every leaving session to end for its peer",
             stall=sc.timeouts.call)
    for p, sid in leaving:
        sc.released(sid, clause="S5", why=f"{when}: after its connection ended ({ending})")
        p.close(quiet=True)


def _still_open(sc: Scenario, live: list[tuple[Peer, int]], when: str,
                stale: list[int]) -> None:
    """No session the test did not end was released or closed for its peer (S8). A failure's
    timeline shows the sessions that left last too: one of them had the handle or slot."""
    for p, sid in live:
        if sc.rec.is_released(sid) or p.eof is not None:
            raise sc.fail("S8", f"{when}: session {sid}, never ended, to stay open while stale "
                          "ids were fired", f"its peer saw {p.eof or 'nothing'}; released: "
                          f"{sc.rec.is_released(sid)} (a stale disconnect(), or a late "
                          "completion of a released session, closed it?)",
                          [sid, *stale[-RECENT:]])


def _still_theirs(sc: Scenario, live: list[tuple[Peer, int]], stale: list[int]) -> None:
    """Every session that was never ended is still open, and echoes its own bytes only."""
    _still_open(sc, live, "the end", stale)
    for p, sid in live:
        p.queue(tagged(sid, 64))
    peers = [p for p, _ in live]
    sc.drive(peers, until=lambda: all(p.eof is not None or (len(p.received) >= len(p.sent)
                                                            and not p.outbox_bytes)
                                      for p in peers),
             clause="S4", expected="every session still connected to echo its own bytes",
             stall=sc.timeouts.call, session_ids=[sid for _, sid in live])
    _still_open(sc, live, "the end", stale)
    for p, sid in live:
        if STALE in p.received or p.received != p.sent:
            raise sc.fail("S8", f"the peer of {sid} to receive its own echo and nothing else",
                          f"it received {bytes(p.received[:80])!r}"
                          f"{' (a stale send)' if STALE in p.received else ''}", [sid])
        sc.settle(p, inbound_complete=True)


# ---- an old timer and the new owner's flush

# The linger of both sessions (scaled with the suite's deadlines). Timeline, with L = linger
# and 0 = the first old session's disconnect():
#   0 ........ old sessions disconnect; their small queues flush at once; released
#   0.6 L .... new sessions (in the old slots and handles) get a flush larger than the kernel
#              buffers, their peers not reading, and disconnect(): linger runs to 1.6 L
#   1.0 L .... the old sessions' linger timers fire, if the server still has them
#   1.15 L ... the new peers read again: every flush completes well before 1.6 L
LINGER = 1.0
NEW_CLOSE_AT = 0.6
RESUME_AFTER = 1.15
# An end of a new session's flush this long (times linger) before its own deadline is early:
# an old timer's abort comes 0.6 L early; the drive notices an end within RECHECK.
EARLY = 0.2
# A flush needs a queue the kernel cannot take whole: beyond what loopback buffers.
FLUSH = 2 * KERNEL_BUFFERED


@pytest.mark.clause("S9", "S8")
@suite_settings(weight=0.25)
@given(olds=st.integers(1, 3), extra=st.integers(0, 2), faults=fault_plans())
def test_s09_old_linger_timer_spares_the_new_owner(conformance, olds, extra, faults):
    """Old sessions disconnect() with a small queue: their close completes at once, long
    before their linger timers would fire. New sessions take their slots and handles, get a
    flush larger than the kernel buffers to peers that read nothing yet, and disconnect().
    The old timers fire in the middle of those flushes; then the new peers read. Each new
    peer receives every accepted byte, then EOF -- not a reset -- and each new session is
    released once, after its flush (S9); the old events touched nobody (S8).

    The classic bug: the linger timer is keyed by the slot or the handle, not the id, and is
    never cancelled ("it checks the session is still closing when it fires"). When it fires
    the slot holds a newcomer that is closing too -- and gets aborted mid-flush.
    """
    linger = LINGER * conformance.timeouts.scale
    with conformance.scenario(linger=linger, send_queue_limit=FLUSH + 1, faults=faults) as sc:
        old_peers = _one_by_one(sc, olds)
        old_ids = [sc.session(p) for p in old_peers]
        first = time.monotonic()
        for sid in old_ids:
            sc.rec.send(sid, b"bye")
            if not sc.rec.disconnect(sid):
                raise sc.fail("S9", f"disconnect({sid}) -> True", "it returned False", [sid])
        last = time.monotonic()
        sc.drive(old_peers, until=lambda: all(p.eof is not None for p in old_peers),
                 clause="S9", expected="every old peer to read its 3 bytes, then EOF",
                 stall=sc.timeouts.call, session_ids=old_ids)
        for p, sid in zip(old_peers, old_ids, strict=True):
            sc.released(sid, clause="S9", why="after disconnect() and a 3-byte flush")
            p.close()
        new_peers = _one_by_one(sc, olds + extra)
        new_ids = [sc.session(p) for p in new_peers]
        for k, (p, sid) in enumerate(zip(new_peers, new_ids, strict=True)):
            p.pause_reading()
            if not sc.send(sid, make_payload(FLUSH, k)):
                raise sc.fail("S7", f"send({sid}, {FLUSH} bytes) -> True under the limit",
                              "it returned False", [sid])
        _pass_until(sc, first + NEW_CLOSE_AT * linger)
        closed_at = time.monotonic()
        for sid in new_ids:
            if not sc.rec.disconnect(sid):
                raise sc.fail("S9", f"disconnect({sid}) -> True", "it returned False", [sid])
        sc.rec.note("the old sessions' linger timers are due about now")
        _pass_until(sc, last + RESUME_AFTER * linger)
        resumed_at = time.monotonic()
        for p in new_peers:
            p.resume_reading()
        ended: dict[int, float] = {}  # new peer index -> when its connection ended

        def all_ended() -> bool:
            for i, p in enumerate(new_peers):
                if p.eof is not None:
                    ended.setdefault(i, time.monotonic())
            return len(ended) == len(new_peers)

        sc.drive(new_peers, until=all_ended, clause="S9",
                 expected="every new peer to read its flush, then EOF",
                 stall=sc.timeouts.call, session_ids=new_ids)
        # A correct server may still abort a new session -- at its *own* linger deadline, if
        # the machine is too slow to flush megabytes in the time left (a loaded CI machine,
        # or the test thread itself late to resume the peers). Only an end before that
        # deadline is an old event's doing; the drive above notices an end within RECHECK.
        own_deadline = closed_at + linger
        for i, (p, sid) in enumerate(zip(new_peers, new_ids, strict=True)):
            sc.released(sid, clause="S9", why="after disconnect() and its flush")
            accepted = sc.rec.accepted(sid)
            whole = p.eof == "EOF" and bytes(p.received) == accepted
            if not whole and ended[i] < own_deadline - EARLY * linger:
                raise sc.fail("S9", f"the peer of {sid} to receive all {len(accepted)} accepted "
                              f"bytes, then EOF, or at least not to be cut off before its own "
                              f"linger ran out ({own_deadline - resumed_at:.2f} s after it "
                              "began to read)",
                              f"it got {len(p.received)} bytes, then {p.eof}, "
                              f"{own_deadline - ended[i]:.2f} s before its own deadline (an old "
                              "session's linger timer aborted it?)", [sid])
            if not whole:
                event("a new session's flush was aborted at its own linger (a slow machine)")
            sc.settle(p, outbound_complete=whole)


def _one_by_one(sc: Scenario, n: int) -> list[Peer]:
    """Connect n peers, each once the previous one's session began. The OS gives every new
    socket the lowest free fd, so an old peer and its session took two neighbouring fds;
    once both are closed, a newcomer's client socket takes the first and the server's accept
    the second: the newcomer's session holds the old session's handle."""
    peers = []
    for _ in range(n):
        peers.append(sc.connect())
        sc.session(peers[-1])
    return peers


def _pass_until(sc: Scenario, moment: float) -> None:
    """Let time pass until `moment` (time.monotonic()).

    The one wait here that is not for an event: a correct server shows nothing when an old
    timer comes due -- it finds no session and does nothing -- so all the test can know of
    that timer is its time. The peers are paused, so there is no I/O to drive.
    """
    sc.rec.wait_for(lambda: time.monotonic() >= moment, max(0.0, moment - time.monotonic()))
