"""S3 and S4: the two byte streams arrive whole and in order, whatever the chunking.

The echo properties check both directions at once: the peer sends generated data in generated
chunk sizes, the application echoes every on_recv from inside the callback, and the trace
checker compares on_recv data with what the peer sent (S3) and what the peer read with what
send() accepted (S4). The bulk property pushes several megabytes through a peer with a tiny
receive buffer, so the server's writes are cut short by the kernel: an implementation that
treats a partial send as complete loses bytes, and the S4 check says at which offset.
"""

from __future__ import annotations

import threading

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
    tagged,
)


@pytest.mark.clause("S3")
@suite_settings()
@example(size=96 << 10, seed=0)  # more than one 64 KiB recv takes: a reader must drain
@given(size=st.integers(1, 96 << 10), seed=st.integers(0, 2**16))
def test_s03_bytes_sent_during_on_connect_are_all_delivered(conformance, size, seed):
    """The peer sends while on_connect is still running; all of it waits in the kernel, and
    once on_connect returns every byte must reach on_recv -- also the part beyond what one
    recv() takes, for which an edge-triggered socket reports no second edge (S3)."""
    data = make_payload(size, seed)
    gate = threading.Event()

    def slow_connect(rec, sid, _):
        gate.wait(conformance.timeouts.io)  # the application is busy until the test says

    with conformance.scenario(on_connect=slow_connect) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(data)
        sc.drive([peer], until=lambda: peer.outbox_bytes == 0, clause="S3",
                 expected=f"the peer's {size} bytes to fit in the kernel's buffers")
        gate.set()
        sc.wait(lambda: len(sc.rec.received(sid)) >= size, clause="S3",
                expected=f"on_recv to deliver all {size} bytes sent during on_connect",
                actual=lambda: f"{len(sc.rec.received(sid))} bytes delivered",
                stall=sc.timeouts.call, progress=lambda: min(len(sc.rec.received(sid)), size),
                session_ids=[sid])
        sc.settle(peer, inbound_complete=True)


@pytest.mark.clause("S3", "S4")
@suite_settings()
@given(data=payloads(max_size=2 << 20), chunks=chunkings(1 << 20),
       rcvbuf=st.sampled_from([None, 4096]), faults=fault_plans())
def test_s03_s04_echo_whole_and_in_order(conformance, data, chunks, rcvbuf, faults):
    """Echo of generated data in generated chunks: both streams exact (S3, S4). Writes of up
    to a megabyte arrive faster than one recv() takes them, so a reader that does not drain
    leaves bytes behind. Under injected faults (short reads and writes, EAGAIN, interrupted
    calls, held completions) nothing changes: they are the kernel's to give."""
    # linger: the flush after the peer's FIN must never be cut short here, however slow the
    # machine; the peer reads as fast as it can.
    with conformance.scenario(on_recv=echo, faults=faults,
                              linger=conformance.timeouts.flush(len(data))) as sc:
        peer = sc.connect(rcvbuf=rcvbuf)
        sid = sc.session(peer)
        peer.queue(data, chunks)
        sc.drive([peer], until=lambda: len(sc.rec.received(sid)) >= len(data), clause="S3",
                 expected=f"on_recv to deliver all {len(data)} bytes the peer sent",
                 stall=sc.timeouts.call,
                 progress=lambda: min(len(sc.rec.received(sid)), len(data)), session_ids=[sid])
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S4",
                 expected=f"the peer of {sid} to read the echo of {len(data)} bytes, then EOF",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), len(data)),
                 session_ids=[sid])
        sc.released(sid, clause="S5", why="after the peer's FIN and the flush")
        sc.settle(peer, inbound_complete=True, outbound_complete=True)


@pytest.mark.clause("S3", "S4")
@suite_settings(weight=0.5)
@given(big=st.integers(2 * KERNEL_BUFFERED + 1, 3 * KERNEL_BUFFERED),
       sizes=st.lists(st.integers(1, 1 << 20), max_size=3), seed=st.integers(0, 2**32))
def test_s04_partial_sends_lose_nothing(conformance, big, sizes, seed):
    """Megabytes to a peer with a 4 KiB receive buffer: the kernel takes each write in pieces,
    and every byte of every accepted send() still arrives, in order (S4)."""
    sizes = [*sizes, big]  # one write larger than the kernel can take at once
    blobs = [make_payload(n, seed + i) for i, n in enumerate(sizes)]
    total = sum(sizes)
    # linger: the flush after disconnect() must never be cut short here, however slow the
    # machine; the peer reads as fast as it can.
    limit = total + KERNEL_BUFFERED
    with conformance.scenario(send_queue_limit=limit,
                              linger=conformance.timeouts.flush(total)) as sc:
        peer = sc.connect(rcvbuf=4096)
        sid = sc.session(peer)
        for blob in blobs:
            if not sc.send(sid, blob):
                raise sc.fail("S7", f"send({sid}, {len(blob)} bytes) -> True: the queue limit "
                              f"is {limit}", "it returned False", [sid])
        # disconnect() flushes, then FIN: the peer's EOF says "that was everything", so a
        # lost byte shows at once instead of as a wait for bytes that never come.
        sc.rec.disconnect(sid)
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S4",
                 expected=f"the peer of {sid} to receive all {total} accepted bytes, then EOF",
                 stall=sc.timeouts.call, progress=lambda: min(len(peer.received), total),
                 session_ids=[sid])
        sc.settle(peer, outbound_complete=peer.eof == "EOF")


@pytest.mark.clause("S4", "S13")
@suite_settings(weight=0.5)
@given(threads=st.integers(2, 4), messages=st.integers(1, 40), size=st.integers(1, 20000))
def test_s04_sends_from_many_threads_stay_contiguous(conformance, threads, messages, size):
    """send() from several threads at once: each call's bytes arrive contiguous (S4, S13)."""
    with conformance.scenario(send_queue_limit=threads * messages * size + 1) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        total = threads * messages * size
        expected = {tagged(t * 1000 + m, size) for t in range(threads) for m in range(messages)}

        def sender(t: int) -> None:
            for m in range(messages):
                sc.server.send(sid, tagged(t * 1000 + m, size))

        workers = [threading.Thread(target=sender, args=(t,), name=f"app-sender-{t}",
                                    daemon=True)
                   for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(sc.timeouts.io)
        if any(w.is_alive() for w in workers):
            raise sc.fail("S13", "send() from several threads to return",
                          "a sender thread was still blocked in send()", [sid])
        sc.drive([peer], until=lambda: len(peer.received) >= total, clause="S4",
                 expected=f"{total} bytes from {threads} threads", stall=sc.timeouts.call,
                 progress=lambda: min(len(peer.received), total), session_ids=[sid])
        got = bytes(peer.received)
        pieces = {got[i : i + size] for i in range(0, len(got), size)}
        if len(got) != total or pieces != expected:
            stray = sorted(pieces - expected, key=len)[:1]
            raise sc.fail("S4", f"{threads * messages} contiguous {size}-byte messages",
                          f"{len(got)} bytes; a {size}-byte slot held {stray!r:.80}", [sid])
