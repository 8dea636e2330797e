"""S12: a peer reset, or a callback that raises, ends at most that one session.

The classic bugs: an ECONNRESET from one socket propagating out of the event loop (every
session dies), and an application exception killing the I/O thread.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._peers import echoed
from conformance._profiles import suite_settings
from conformance._strategies import KERNEL_BUFFERED, chunkings, fault_plans, tagged

BOOM = b"BOOM"


class Boom(Exception):
    """What the application raises on purpose."""


@pytest.mark.clause("S12")
@suite_settings()
@given(where=st.sampled_from(["on_connect", "on_recv", "on_release"]),
       bystanders=st.integers(1, 4))
def test_s12_raising_callback_ends_at_most_its_session(conformance, where, bystanders):
    """One session's callback raises: the others keep echoing, the server keeps accepting, and
    on_release is still called for the raising session (S12, S2)."""
    victim: list[int] = []

    def on_connect(rec, sid, _):
        if where == "on_connect" and not victim:
            victim.append(sid)
            raise Boom(f"on_connect({sid}) raised on purpose")

    def on_recv(rec, sid, data):
        if where == "on_recv" and BOOM in data:
            victim.append(sid)
            raise Boom(f"on_recv({sid}) raised on purpose")
        echo(rec, sid, data)

    def on_release(rec, sid, _):
        if where == "on_release" and not victim:
            victim.append(sid)
            raise Boom(f"on_release({sid}) raised on purpose")

    with conformance.scenario(on_connect=on_connect, on_recv=on_recv,
                              on_release=on_release) as sc:
        bad = sc.connect()
        bad_id = sc.session(bad, clause="S12")
        if where == "on_recv":
            bad.queue(BOOM)
        elif where == "on_release":
            bad.shut_write()
        sc.drive([bad], until=lambda: bad.outbox_bytes == 0, clause="S12",
                 expected="the raising session's peer to send")
        others = [sc.connect() for _ in range(bystanders)]
        for p in others:
            sc.session(p, clause="S12")
            p.queue(b"still-serving")
        sc.drive(others, until=lambda: echoed(others), clause="S12",
                 expected="every other session to keep echoing after one callback raised")
        if where != "on_release":
            bad.shut_write()
        sc.released(bad_id, clause="S12",
                    why=f"owed to the session whose {where} raised")
        for p in others:
            sc.settle(p)


@pytest.mark.clause("S12")
@suite_settings()
@given(resets=st.integers(1, 4), bystanders=st.integers(1, 3),
       with_data=st.booleans())
def test_s12_reset_releases_only_its_session(conformance, resets, bystanders, with_data):
    """Peers reset (RST), maybe with data in flight: each of their sessions is released, the
    others keep echoing (S12)."""
    with conformance.scenario(on_recv=echo) as sc:
        doomed = [sc.connect() for _ in range(resets)]
        doomed_ids = [sc.session(p, clause="S12") for p in doomed]
        others = [sc.connect() for _ in range(bystanders)]
        for p in others:
            sc.session(p, clause="S12")
        for p, sid in zip(doomed, doomed_ids, strict=True):
            if with_data:
                sc.rec.send(sid, b"\0" * (64 << 10))
            p.reset()
        for sid in doomed_ids:
            sc.released(sid, clause="S12", why="after its peer reset the connection")
        for p in others:
            p.queue(b"still-serving")
        sc.drive(others, until=lambda: echoed(others), clause="S12",
                 expected="the other sessions to keep echoing after the resets")
        for p in others:
            sc.settle(p)


@pytest.mark.clause("S12", "S3", "S4")
@suite_settings()
@given(sizes=st.lists(st.integers(1, 200_000), min_size=2, max_size=5),
       chunks=chunkings(16 << 10), faults=fault_plans(resets=True))
def test_s12_a_reset_at_any_call_ends_only_its_session(conformance, sizes, chunks, faults):
    """Connections reset at injected points -- before a recv, before a send, in the middle of
    an echo (fault injection, for implementations that opt in): each reset session is
    released, and every other session's echo arrives whole, then EOF (S12, S3, S4). The
    reset sessions' streams must still be prefixes of the truth (S3, S4)."""
    # linger: the flush after each peer's FIN must never be cut short here, however slow
    # the machine; a reset ends a flush at once, without waiting for linger.
    with conformance.scenario(on_recv=echo, faults=faults,
                              linger=conformance.timeouts.flush(max(sizes))) as sc:
        peers = [sc.connect() for _ in sizes]
        ids = [sc.session(p, clause="S12") for p in peers]
        for p, sid, size in zip(peers, ids, sizes, strict=True):
            p.queue(tagged(sid, size), chunks)
            p.shut_write()
        sc.drive(peers, until=lambda: all(p.eof is not None for p in peers), clause="S12",
                 expected="every connection to end: an echo and EOF, or a reset",
                 stall=sc.timeouts.call,
                 progress=lambda: sum(min(len(p.received), size) + (p.eof is not None)
                                      for p, size in zip(peers, sizes, strict=True)),
                 session_ids=ids)
        reset = sc.faults.reset_ids if sc.faults is not None else set()
        for p, sid in zip(peers, ids, strict=True):
            sc.released(sid, clause="S12" if sid in reset else "S5",
                        why="after its connection was reset" if sid in reset
                        else "after its peer's FIN and the echo's flush")
            whole = sid not in reset
            sc.settle(p, inbound_complete=whole, outbound_complete=whole)


@pytest.mark.clause("S12", "S9")
def test_s12_reset_ends_a_graceful_close(conformance):
    """disconnect() a session whose peer stopped reading, with megabytes still queued: its
    flush waits for the peer, for up to linger. Then the peer resets. The session is released
    within a second (S12), not when linger runs out: no byte can be flushed to a connection
    that is gone.

    The classic bug keeps the first reason to close ("disconnect: flush, then FIN") and
    ignores the reset that came after it, so the session lingers -- and a level-triggered
    loop meanwhile finds the reset socket readable on every turn and spins until the linger
    deadline.
    """
    linger = 3 * conformance.timeouts.release  # well beyond the second allowed here
    backlog = 2 * KERNEL_BUFFERED  # twice what the kernel holds: the flush cannot finish
    with conformance.scenario(linger=linger, send_queue_limit=backlog) as sc:
        peer = sc.connect(rcvbuf=4096)
        sid = sc.session(peer)
        peer.pause_reading()
        if not sc.send(sid, b"\0" * backlog):
            raise sc.fail("S7", f"send({sid}, {backlog} bytes) -> True with "
                          f"send_queue_limit={backlog}", "it returned False", [sid])
        if not sc.rec.disconnect(sid):
            raise sc.fail("S9", f"disconnect({sid}) -> True", "it returned False", [sid])
        peer.reset()
        sc.released(sid, clause="S12", timeout=sc.timeouts.release,
                    why=f"within a second of its peer's reset, although it was flushing "
                    f"(linger {linger:g} s)")
