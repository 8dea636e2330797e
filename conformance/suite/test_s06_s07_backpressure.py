"""S6 and S7: a peer that stops reading costs its own session a full queue -- nothing more.

When a peer stops reading, its receive window closes, the server's send buffer fills, and a
send() on that socket would block (or, non-blocking, would-block). The classic bugs: send()
blocks the caller (one slow client freezes everyone), the loop retries a would-block write
in a spin, or the queue grows without bound until the server runs out of memory.

Kernel buffers on loopback hold several megabytes per connection, so "the pipe is full" is
established by watching send() return False (S7), never by a fixed size.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._cpu import measure_busy
from conformance._kernel import InKernel, in_kernel
from conformance._peers import Deadline, Peer
from conformance._profiles import suite_settings
from conformance._strategies import KERNEL_BUFFERED, make_payload, payloads

# S6's spin check: the server's threads may want at most this fraction of one core while every
# session is idle except a stalled one (`conformance._cpu`: time on a core or waiting for one,
# so a busy loop shows ~1.0 however loaded the machine is; an idle server ~0.01).
SPIN_FRACTION = 0.5
# ... measured over this long (the contract says at least a second).
SPIN_WINDOW = 1.0
# How long the kernel's figures for a stalled connection must hold still before the suite
# takes them as the state of things (two readings this far apart agree). The pipe looks full
# once before it is: the peer's delayed ACK (40 ms on Linux) lets the server's send buffer
# grow, and the server writes a few hundred kB more (measured). A writer slower than this is
# caught by the reading after the verdict sends (see _judge_the_boundary).
QUIET = 0.06
# A refused send() is retried after 1, 2, 4 ... ms, while the server moves its queue into the
# kernel, until it has stayed refused this long: then the pipe is (nearly) full.
REFUSED_FOR = 0.03


@pytest.mark.clause("S6", "S7")
@suite_settings(weight=0.5)
@given(limit=st.sampled_from([64 << 10, 1 << 20, 3 << 20]), probe=payloads(max_size=8192))
def test_s06_stalled_peer_delays_nobody_and_loses_nothing(conformance, limit, probe):
    """A peer stops reading: send() never blocks and soon returns False (S7); another session
    still echoes (S6); the stalled session stays open; once it reads, every accepted byte
    arrives (S4, S6)."""
    with conformance.scenario(on_recv=echo, send_queue_limit=limit) as sc:
        stalled = sc.connect(rcvbuf=4096)
        sid = sc.session(stalled)
        stalled.pause_reading()
        accepted = sc.fill_queue(sid)
        other = sc.connect()
        other_id = sc.session(other)
        other.queue(probe)
        sc.drive([other], until=lambda: len(other.received) >= len(probe), clause="S6",
                 expected=f"session {other_id} to echo {len(probe)} bytes while session {sid}'s "
                 "peer is stalled", session_ids=[other_id, sid])
        if sc.rec.is_released(sid):
            raise sc.fail("S6", f"session {sid} to stay open while its peer is only slow",
                          "it was released", [sid])
        stalled.resume_reading()
        sc.drive([stalled], until=lambda: len(stalled.received) >= accepted, clause="S6",
                 expected=f"the stalled peer, reading again, to get all {accepted} accepted "
                 "bytes", stall=sc.timeouts.call,
                 progress=lambda: min(len(stalled.received), accepted), session_ids=[sid])
        sc.send_eventually(sid, b"after-drain", clause="S7",
                           expected=f"send({sid}) to succeed again once the queue drained")
        sc.settle(stalled)
        sc.settle(other)


@pytest.mark.clause("S7")
@suite_settings()
@given(limit=st.integers(0, 1 << 20))
@example(limit=0)
def test_s07_limit_boundary(conformance, limit):
    """A send() larger than the limit returns False and queues nothing; one that brings an
    empty queue exactly to the limit succeeds; the session stays open: it still receives and
    disconnect() closes it gracefully (S7).

    The range starts at 0, which `ServerConfig` allows: a limit of 0 refuses every non-empty
    send(), `send(id, b"")` still returns True, and nothing else changes. Two classic bugs
    only show there: "0 means no limit" (a config convention that turns a refusal into
    unbounded buffering) and a refused send() that closes the session.
    """
    with conformance.scenario(send_queue_limit=limit) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        if sc.rec.send(sid, b"x" * (limit + 1)):
            raise sc.fail("S7", f"send() of {limit + 1} bytes -> False with "
                          f"send_queue_limit={limit}", "it returned True", [sid])
        exact = make_payload(limit, limit)
        if not sc.rec.send(sid, exact):
            raise sc.fail("S7", f"send() of exactly send_queue_limit={limit} bytes to an idle "
                          "session -> True", "it returned False", [sid])
        sc.drive([peer], until=lambda: len(peer.received) >= limit, clause="S7",
                 expected=f"the {limit} accepted bytes (and none of the refused ones) to arrive",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), limit),
                 session_ids=[sid])
        if bytes(peer.received[:limit]) != exact:
            raise sc.fail("S7", "a refused send() to queue nothing", "the peer's first "
                          f"{limit} bytes are not the accepted payload: the refused call's "
                          "bytes went out", [sid])
        # A refusal leaves the session as it was: open, receiving, closable.
        peer.queue(b"still-here")
        sc.drive([peer], until=lambda: sc.rec.received(sid) == b"still-here", clause="S7",
                 expected=f"session {sid} to stay open after a refused send() and deliver "
                 "the peer's next bytes", session_ids=[sid])
        if not sc.rec.disconnect(sid):
            raise sc.fail("S7", f"disconnect({sid}) -> True after a refused send() (a refusal "
                          "does not close the session)", "it returned False", [sid])
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S9",
                 expected=f"the peer of {sid} to read the {limit} accepted bytes, then EOF",
                 session_ids=[sid])
        sc.released(sid, clause="S9", why="after disconnect() and the flush")
        if bytes(peer.received) != exact or peer.eof != "EOF":
            raise sc.fail("S7", f"exactly the {limit} accepted bytes, then EOF",
                          f"the peer got {len(peer.received)} bytes, then {peer.eof}", [sid])
        sc.settle(peer, inbound_complete=True, outbound_complete=True)


@pytest.mark.clause("S7")
@suite_settings(weight=0.5)
@given(limit=st.integers(64 << 10, 1 << 20), chunk=st.integers(8 << 10, 64 << 10))
@example(limit=(3 << 16) + 5, chunk=64 << 10)
def test_s07_limit_on_a_partly_full_queue(conformance, limit, chunk):
    """With bytes already queued, send() is judged on the queue *plus* the new bytes: one
    that would go past the limit returns False, even if the queue alone is under it (S7).

    The situation: a peer stops reading, the kernel's buffers fill, and the server holds
    `held` accepted bytes itself. Classic bugs of the admission rule only show here, never
    on an empty queue: checking the queue as it was (`if size > limit or pending > limit:
    return False` -- the first guard makes every check on an idle session pass, and the
    queue overshoots by a whole message), or a slip such as `pending | size > limit` for
    `+` (found by a mutation tool; it lets through any size whose bits overlap the
    queue's). Both accept a send() that a correct server refuses.

    Why /proc/net/tcp: the suite knows what send() accepted and what the peer read, but not
    how much of the rest the kernel holds -- several megabytes on loopback, a different
    amount each run -- so `fill_queue` can only bound the total. Once the pipe is stalled,
    the kernel's figures hold still and Linux's TCP table gives them (`conformance._kernel`):
    `held` = accepted - read by the peer - the server's send buffer - the peer's receive
    buffer. A correct server holds at least that much (more while a write call is in
    progress -- a writer thread blocked in sendmsg(), Trio's send_all(): its bytes count as
    queued until it returns, also the part the kernel already took; docs/contract.md, S7),
    and at most the limit. So: `held` must not
    exceed the limit; send(limit - held + 1) and the largest size that `|` lets through
    must return False; send(limit - held) may return False only for such a write in
    progress, and if it returns True the queue is exactly full and one more byte is
    refused. Every verdict is taken between two readings of the kernel that agree: had the
    server still been writing, no verdict is given. Afterwards every accepted byte, and no
    refused one, reaches the peer.
    """
    with conformance.scenario(send_queue_limit=limit) as sc:
        peer = sc.connect(rcvbuf=4096)
        sid = sc.session(peer)
        peer.pause_reading()
        accepted, kernel = _stall(sc, sid, peer, min(chunk, limit))
        if kernel is None:
            event("S7 partly full queue: the kernel's figures never held still; no verdict")
        else:
            _judge_the_boundary(sc, sid, peer, accepted, kernel)
        peer.resume_reading()
        owed = len(sc.rec.accepted(sid))
        sc.drive([peer], until=lambda: len(peer.received) >= owed, clause="S6",
                 expected=f"the peer, reading again, to get all {owed} accepted bytes",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), owed),
                 session_ids=[sid])
        sc.settle(peer)


def _stall(sc, sid: int, peer: Peer, chunk: int) -> tuple[int, InKernel | None]:
    """Fill the pipe to `peer`, which reads nothing: send `chunk`-byte blocks until send()
    stays refused, then wait for the kernel's figures to hold still; again while the server
    turns out to hold nothing itself (the kernel took it all meanwhile) and a round still
    gets bytes accepted. Returns the bytes accepted and the settled figures (None: they
    never held still)."""
    ceiling = sc.config.send_queue_limit + 8 * KERNEL_BUFFERED
    accepted = 0
    while True:
        before = accepted
        accepted = _send_until_refused(sc, sid, chunk, accepted, ceiling)
        kernel = _settled(sc, peer)
        if kernel is None or accepted == before:
            return accepted, kernel
        if accepted - len(peer.received) - kernel.total > 0:
            return accepted, kernel


def _send_until_refused(sc, sid: int, chunk: int, accepted: int, ceiling: int) -> int:
    """send() blocks until one stays refused for REFUSED_FOR seconds; the new total."""
    pause, backoff = 0.001, threading.Event()
    while accepted <= ceiling:
        if sc.send(sid, make_payload(chunk, accepted)):
            accepted, pause = accepted + chunk, 0.001
            continue
        if pause > REFUSED_FOR:
            return accepted
        backoff.wait(pause)  # the server moving its queue into the kernel
        pause *= 2
    raise sc.fail("S7", f"send() to return False before {ceiling} bytes were queued to a peer "
                  f"that reads nothing (send_queue_limit={sc.config.send_queue_limit})",
                  f"{accepted} bytes were accepted", [sid])


def _settled(sc, peer: Peer) -> InKernel | None:
    """The kernel's figures for the stalled connection once two readings QUIET seconds
    apart agree; None if that does not happen within the I/O deadline (or a socket is
    gone from the table)."""
    ends = (sc.address, ("127.0.0.1", peer.port))
    deadline, quiet = Deadline(sc.timeouts.io), threading.Event()
    last = in_kernel(*ends)
    while not deadline.expired:
        quiet.wait(min(QUIET * sc.timeouts.scale, deadline.remaining()))
        now = in_kernel(*ends)
        if now is not None and now == last:
            return now
        last = now
    return None


def _judge_the_boundary(sc, sid: int, peer: Peer, accepted: int, kernel: InKernel) -> None:
    limit = sc.config.send_queue_limit
    held = accepted - len(peer.received) - kernel.total
    account = f"{accepted} bytes accepted, {len(peer.received)} read by the peer, {kernel}"
    if held > limit:
        raise sc.fail("S7", f"the server to hold at most send_queue_limit={limit} accepted "
                      "bytes itself", f"it holds at least {held}: {account}", [sid])
    over = [limit - max(held, 0) + 1]
    blind = _or_blind_size(held, limit)
    if blind is not None and blind not in over:
        over.append(blind)
    wrongly = [n for n in over if sc.send(sid, make_payload(n, accepted + n))]
    exact = limit - max(held, 0)
    to_the_limit = exact > 0 and sc.send(sid, make_payload(exact, accepted))
    one_more = to_the_limit and sc.send(sid, b"+")
    if in_kernel(sc.address, ("127.0.0.1", peer.port)) != kernel:
        event("S7 partly full queue: the server was still writing; no verdict")
        return
    event("S7 partly full queue: " + (
        "the queue was full already" if exact <= 0 else
        "a send() to exactly the limit was accepted" if to_the_limit else
        "a send() to exactly the limit was refused (a write in progress may count)"))
    if wrongly:
        raise sc.fail("S7", f"send() of {wrongly[0]} bytes -> False: the server holds at "
                      f"least {held} bytes itself ({account}; the same before and after "
                      f"the call), and {held} + {wrongly[0]} > send_queue_limit={limit}",
                      "it returned True", [sid])
    if one_more:
        raise sc.fail("S7", f"send() of 1 byte -> False once a send() of {exact} bytes "
                      f"brought the {held} bytes the server held ({account}) exactly to "
                      f"send_queue_limit={limit}", "it returned True", [sid])


def _or_blind_size(held: int, limit: int) -> int | None:
    """The largest size S with held + S > limit that `held | S > limit` lets through
    (held | S <= limit), if any: the largest superset of held's bits not above `limit`."""
    if not 0 < held <= limit:
        return None
    best = limit if limit & held == held else -1
    for bit in range(limit.bit_length()):
        if limit >> bit & 1 and not held >> bit & 1:
            # limit's bits above `bit`, 0 at `bit`, every lower bit set: below limit
            candidate = limit >> (bit + 1) << (bit + 1) | ((1 << bit) - 1)
            if candidate & held == held:
                best = max(best, candidate)
    return best if held + best > limit else None


@pytest.mark.clause("S6")
def test_s06_no_spin_while_a_peer_is_stalled(conformance):
    """With one stalled peer and a full queue, the server sleeps: the process uses far less
    than a core over a second (S6: a level-triggered write interest left armed spins)."""
    with conformance.scenario(send_queue_limit=1 << 20) as sc:
        stalled = sc.connect(rcvbuf=4096)
        sid = sc.session(stalled)
        stalled.pause_reading()
        sc.fill_queue(sid)
        idle = sc.connect()
        sc.session(idle)
        busy = measure_busy(SPIN_WINDOW)
        if busy.cores > SPIN_FRACTION:
            raise sc.fail("S6", f"at most {SPIN_FRACTION:.0%} of one core while idle with a "
                          "stalled peer", str(busy), [sid])
        stalled.resume_reading()
        owed = len(sc.rec.accepted(sid))
        sc.drive([stalled], until=lambda: len(stalled.received) >= owed,
                 clause="S6", expected="the stalled peer to get every accepted byte",
                 stall=sc.timeouts.call, progress=lambda: min(len(stalled.received), owed),
                 session_ids=[sid])
        sc.settle(stalled)
