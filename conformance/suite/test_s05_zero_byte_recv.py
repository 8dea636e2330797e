"""S5: the zero-byte recv. A peer's FIN ends its session -- promptly, and losing nothing.

recv() returning 0 is the only way a TCP server learns that the peer closed. The classic bug
treats 0 as "no data yet" and keeps the session (and its socket, and its slot) forever; the
other classic bug closes at once and drops the reply that on_recv queued for the last
message. The peer here half-closes (SHUT_WR) and keeps reading, so it can tell both apart.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._profiles import suite_settings
from conformance._strategies import (
    KERNEL_BUFFERED,
    chunkings,
    fault_plans,
    make_payload,
    payloads,
)
from conformance._trace import Kind


@pytest.mark.clause("S5")
@suite_settings()
@given(data=st.one_of(st.just(b""), payloads(max_size=128 << 10)), chunks=chunkings(4096),
       reply=payloads(max_size=64 << 10), faults=fault_plans())
def test_s05_fin_releases_after_delivery_and_flush(conformance, data, chunks, reply, faults):
    """Peer sends, then FIN: every byte reaches on_recv before on_release, the echo and the
    reply queued from the last on_recv reach the peer, then EOF, then release (S5).

    The data before the FIN is delivered while the session is still live, so send() from
    inside those on_recv calls is accepted -- also from the last one. The classic bug reads
    to the FIN first, marks the session closing, and only then delivers what it read: the
    reply to the last message is refused (or accepted and dropped), and the peer that asked
    and half-closed never gets its answer."""
    replied: set[int] = set()

    def echo_then_reply_once(rec, sid, chunk):
        echo(rec, sid, chunk)
        # rec.received() does not include `chunk` yet: it is indexed when on_recv returns.
        if len(rec.received(sid)) + len(chunk) == len(data) and sid not in replied:
            replied.add(sid)
            rec.send(sid, reply)

    owed = len(data) + len(reply)  # the echo, then the reply
    with conformance.scenario(on_recv=echo_then_reply_once, faults=faults,
                              linger=conformance.timeouts.flush(owed)) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(data, chunks)
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected=f"the peer of {sid} to read every accepted byte, then EOF",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), owed),
                 session_ids=[sid])
        _refused_from_on_recv(sc, sid)
        _flushed_before_eof(sc, peer, sid)
        sc.released(sid, clause="S5", why="after the peer's FIN, once the flush was done")
        sc.settle(peer, inbound_complete=True, outbound_complete=True)


@pytest.mark.clause("S5")
@suite_settings(weight=0.25)
@given(big=st.integers(2 * KERNEL_BUFFERED + 1, 3 * KERNEL_BUFFERED), seed=st.integers(0, 2**16),
       pieces=st.integers(1, 4), request=payloads(max_size=4096),
       rcvbuf=st.sampled_from([None, 4096]))
def test_s05_fin_mid_transfer_still_flushes_it(conformance, big, seed, pieces, request, rcvbuf):
    """The application answers on_connect with far more than the kernel can buffer; the peer,
    not reading yet, sends a request and half-closes, so the FIN is observed while the answer
    is still in flight -- a partial send, a WSASend not yet completed, most of it still
    queued. Then the peer reads (slowly, with a small window): every accepted byte, then EOF,
    then on_release (S5).

    The classic bug is a proactor's: the zero-byte WSARecv completion is taken for "the
    session's last operation ended" and the socket is closed there, while a WSASend is still
    pending. The peer gets what the kernel buffered, then EOF. The flush has no fixed total
    here: the peer reads as fast as its window lets it, and only a stall fails."""
    answer = make_payload(big, seed)
    cut = [big * i // pieces for i in range(pieces + 1)]
    blocks = [answer[a:b] for a, b in pairwise(cut)]

    def answer_at_once(rec, sid, _):
        for block in blocks:
            rec.send(sid, block)

    # The flush starts when the FIN is observed and lasts as long as the peer takes to read:
    # linger must not cut it short, however slow the machine (it scales with the answer).
    linger = conformance.timeouts.io * (1 + big / KERNEL_BUFFERED)
    with conformance.scenario(on_connect=answer_at_once, send_queue_limit=big,
                              linger=linger) as sc:
        peer = sc.connect(rcvbuf=rcvbuf)
        peer.pause_reading()
        sid = sc.session(peer)
        sc.wait(lambda: any(e.kind is Kind.CONNECT and e.session_id == sid
                            for e in sc.rec.events), clause="S6",
                expected=f"on_connect({sid}) to return after its send() calls",
                stall=sc.timeouts.call, session_ids=[sid])
        if sc.rec.accepted(sid) != answer:
            raise sc.fail("S7", f"send() of {big} bytes in {pieces} calls from on_connect to "
                          f"be accepted (send_queue_limit={big})",
                          f"{len(sc.rec.accepted(sid))} bytes were accepted", [sid])
        peer.queue(request)
        peer.shut_write()
        _request_delivered(sc, peer, sid, request, "the peer's request and FIN")
        peer.resume_reading()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected=f"the peer of {sid} to read all {big} accepted bytes, then EOF",
                 timeout=linger, stall=sc.timeouts.call, session_ids=[sid])
        _flushed_before_eof(sc, peer, sid)
        sc.released(sid, clause="S5", why="after the peer's FIN, once the flush was done")
        sc.settle(peer, inbound_complete=True, outbound_complete=True)


# The linger of a session whose peer reads nothing: its flush cannot finish, so linger only
# says when the abort comes. Short, so that a correct server costs the property little.
STALLED_LINGER = 0.2


@pytest.mark.clause("S5")
@suite_settings(weight=0.25)
@given(request=payloads(max_size=4096), chunks=chunkings(1024),
       big=st.integers(2 * KERNEL_BUFFERED, 3 * KERNEL_BUFFERED), seed=st.integers(0, 2**16),
       pieces=st.integers(1, 4), fin_while_waiting=st.booleans())
@example(request=b"GET /replay", chunks=[], big=2 * KERNEL_BUFFERED, seed=0, pieces=1,
         fin_while_waiting=True)
def test_s05_fin_releases_while_its_send_waits_for_a_stalled_peer(
        conformance, request, chunks, big, seed, pieces, fin_while_waiting):
    """The peer sends a request and never reads; the application answers it from on_recv with
    more than the kernel can buffer, so the server's send to that peer waits -- and waits
    forever. Then the peer half-closes (at once, or once the answer is queued and waiting),
    still not reading. Its session is released within linger of the FIN all the same (S5):
    the flush cannot finish, so linger ends it and the connection is aborted.

    The classic bug is the tutorial echo server's loop: `data = await recv()`, on_recv,
    `await send_all(answer)`, read again. While that send waits for a peer that reads nothing,
    nobody reads -- and a FIN is found only by reading (recv() returns 0). The session, its
    socket and its task stay until stop(). A server must keep reading while its send waits."""
    answer = make_payload(big, seed)
    cut = [big * i // pieces for i in range(pieces + 1)]
    blocks = [answer[a:b] for a, b in pairwise(cut)]

    def answer_the_request(rec, sid, chunk):
        # rec.received() does not include `chunk` yet: it is indexed when on_recv returns.
        if len(rec.received(sid)) + len(chunk) == len(request):
            for block in blocks:
                rec.send(sid, block)

    linger = STALLED_LINGER
    with conformance.scenario(on_recv=answer_the_request, send_queue_limit=big,
                              linger=linger) as sc:
        peer = sc.connect(rcvbuf=4096)  # a small window: the answer fills the pipe
        peer.pause_reading()
        sid = sc.session(peer)
        peer.queue(request, chunks)
        if not fin_while_waiting:
            peer.shut_write()  # the FIN right behind the request
        _request_delivered(sc, peer, sid, request, "the peer's request")
        _refused_from_on_recv(sc, sid)
        if sc.rec.accepted(sid) != answer:
            raise sc.fail("S7", f"send() of {big} bytes in {pieces} calls from on_recv to be "
                          f"accepted (send_queue_limit={big})",
                          f"{len(sc.rec.accepted(sid))} bytes were accepted", [sid])
        if fin_while_waiting:
            peer.shut_write()  # the answer is queued: a send to this peer waits, or soon will
            sc.drive([peer], until=lambda: peer.outbox_bytes == 0, clause="S3",
                     expected="the peer's FIN to be taken by the kernel",
                     stall=sc.timeouts.call, session_ids=[sid])
        # Nothing moves any more (the peer reads nothing): the bound is linger, plus the call
        # deadline as the machine's slack -- it does not grow with the answer's bytes.
        sc.released(sid, clause="S5", timeout=linger + sc.timeouts.call,
                    why=f"within linger ({linger:g} s) of its peer's FIN, while the send of "
                    f"the {big}-byte answer waits for that peer, which reads nothing (does "
                    "the session stop reading while its send waits?)")
        peer.resume_reading()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected="the aborted connection to end (EOF or reset) for the peer",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), big),
                 session_ids=[sid])
        sc.settle(peer, inbound_complete=True)


@pytest.mark.clause("S5")
@suite_settings()
@given(data=payloads(max_size=4096), idle_peers=st.integers(0, 3))
def test_s05_fin_with_nothing_queued_releases_within_a_second(conformance, data, idle_peers):
    """With nothing queued, on_release follows the FIN within one second (scaled), while
    other sessions stay open (S5)."""
    with conformance.scenario() as sc:
        others = [sc.connect() for _ in range(idle_peers)]
        other_ids = [sc.session(p) for p in others]
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(data)
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.outbox_bytes == 0, clause="S3",
                 expected="the peer's bytes to be taken by the server")
        sc.wait(lambda: len(sc.rec.received(sid)) == len(data), clause="S3",
                expected=f"on_recv to deliver all {len(data)} bytes before the FIN's release",
                actual=lambda: f"{len(sc.rec.received(sid))} bytes delivered",
                session_ids=[sid])
        sc.released(sid, clause="S5", timeout=sc.timeouts.release,
                    why="within one second of the peer's FIN (nothing was queued)")
        gone = [o for o in other_ids if sc.rec.is_released(o)]
        if gone:
            raise sc.fail("S5", "the FIN of one peer to release only its own session",
                          f"sessions {gone} were released too", [sid, *gone])
        sc.settle(peer, inbound_complete=True)


# ---- checks shared by the properties


def _request_delivered(sc, peer, sid: int, request: bytes, what: str) -> None:
    """S3: the kernel took what the peer queued (`what`), and on_recv delivered `request`."""
    sc.drive([peer], until=lambda: peer.outbox_bytes == 0, clause="S3",
             expected=f"{what} to be taken by the kernel",
             stall=sc.timeouts.call, session_ids=[sid])
    sc.wait(lambda: len(sc.rec.received(sid)) == len(request), clause="S3",
            expected=f"on_recv to deliver the {len(request)}-byte request",
            actual=lambda: f"{len(sc.rec.received(sid))} bytes delivered",
            stall=sc.timeouts.call, session_ids=[sid])


def _refused_from_on_recv(sc, sid: int) -> None:
    """S5: send() from inside on_recv of data that came before the FIN was accepted."""
    trace = sc.rec.trace()
    calls = [e for e in trace if e.kind is Kind.RECV and e.session_id == sid]
    for e in trace:
        if (e.kind is Kind.SEND and e.session_id == sid and e.result is False
                and any(c.seq < e.seq < c.end_seq for c in calls)):
            raise sc.fail("S5", f"send({sid}, ...) from inside on_recv of data sent before "
                          "the FIN to be accepted: the session is live until that data is "
                          "delivered", f"{e.describe()} (was the session marked closing "
                          "before the last data was delivered?)", [sid])


def _flushed_before_eof(sc, peer, sid: int) -> None:
    """S5: the peer read EOF only after every byte send() accepted."""
    accepted = sc.rec.accepted(sid)
    if peer.eof != "EOF" or bytes(peer.received) != accepted:
        raise sc.fail("S5", f"the peer of {sid} to read all {len(accepted)} accepted bytes, "
                      "then EOF", f"it read {len(peer.received)} bytes, then "
                      f"{peer.eof or 'nothing more'}", [sid])
@pytest.mark.clause("S5", "S6")
@suite_settings(weight=0.5)
@given(flushing_first=st.booleans(), data=payloads(max_size=4096))
@example(flushing_first=True, data=b"bye")
def test_s05_fin_releases_while_a_neighbour_flushes_to_a_stalled_peer(
        conformance, flushing_first, data):
    """One loop, two closing sessions: one flushes to a peer that stopped reading (its
    linger far away), the other's peer sends a FIN with nothing queued. The FIN'd session is
    released within a second all the same (S5): a stalled neighbour costs nobody else (S6).

    `workers=1` puts both sessions on the same loop (epoll hands connections to its loops in
    turn; select has one). The classic bug is in the loop's release pass: it stops at the
    first closing session that still has bytes queued (`break` where `continue` was meant),
    or releases only once no session is flushing -- so every FIN behind a slow flush waits
    for that flush, or for its linger to abort it. `flushing_first` decides which of the
    two connected first, that is, which one such a pass meets first.
    """
    linger = 3 * conformance.timeouts.release  # well beyond the one second S5 allows
    backlog = 2 * KERNEL_BUFFERED  # twice what the kernel holds: the flush cannot finish
    with conformance.scenario(workers=1, linger=linger, send_queue_limit=backlog) as sc:
        first = sc.connect(rcvbuf=4096) if flushing_first else sc.connect()
        sc.session(first)  # on_connect before the second connects: a fixed order
        second = sc.connect() if flushing_first else sc.connect(rcvbuf=4096)
        stalled, peer = (first, second) if flushing_first else (second, first)
        flushing, sid = sc.session(stalled), sc.session(peer)
        stalled.pause_reading()
        if not sc.send(flushing, make_payload(backlog, flushing)):
            raise sc.fail("S7", f"send({flushing}, {backlog} bytes) -> True with "
                          f"send_queue_limit={backlog}", "it returned False", [flushing])
        if not sc.rec.disconnect(flushing):
            raise sc.fail("S9", f"disconnect({flushing}) -> True", "it returned False",
                          [flushing])
        peer.queue(data)
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.outbox_bytes == 0, clause="S3",
                 expected="the peer's bytes to be taken by the server")
        sc.wait(lambda: len(sc.rec.received(sid)) == len(data), clause="S3",
                expected=f"on_recv to deliver all {len(data)} bytes before the FIN's release",
                actual=lambda: f"{len(sc.rec.received(sid))} bytes delivered",
                session_ids=[sid])
        sc.released(sid, clause="S5", timeout=sc.timeouts.release,
                    why=f"within one second of its peer's FIN, while session {flushing} on the "
                    f"same loop still flushes to a stalled peer (linger {linger:g} s)")
        # Reading 8 MiB through a 4 KiB window would take seconds: the stalled peer resets.
        stalled.reset()
        sc.released(flushing, clause="S12", why="after its peer's reset")
        sc.settle(peer, inbound_complete=True)
