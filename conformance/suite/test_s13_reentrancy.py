"""S13: send() and disconnect() from inside any callback and from any thread, without deadlock.

The classic bug holds the server's lock while calling back into the application: the first
time the application answers from inside on_recv, the thread deadlocks on its own lock (or,
with two locks, against another thread). Every call here is made from where an application
makes it -- inside on_connect, on_recv and on_release, and from threads of its own.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._profiles import suite_settings
from conformance._strategies import fault_plans

GREETING = b"hello from on_connect;"
BYE = b"bye"


@pytest.mark.clause("S13", "S8")
@suite_settings()
@given(n=st.integers(1, 6), disconnect_in_recv=st.booleans(), faults=fault_plans())
def test_s13_calls_from_inside_callbacks(conformance, n, disconnect_in_recv, faults):
    """on_connect greets; on_recv answers (and maybe disconnects); on_release tries its own
    id (must get False) and greets the other sessions (S13, S8)."""
    own_calls: dict[int, tuple[bool, bool]] = {}

    def on_connect(rec, sid, _):
        rec.send(sid, GREETING)

    def on_recv(rec, sid, data):
        rec.send(sid, data)
        # A stream has no message boundaries: "bye" may come in pieces (short reads).
        if (rec.received(sid) + data).endswith(BYE) and disconnect_in_recv:
            rec.disconnect(sid)

    def on_release(rec, sid, _):
        own_calls[sid] = (rec.send(sid, b"from-own-release"), rec.disconnect(sid))

    with conformance.scenario(on_connect=on_connect, on_recv=on_recv,
                              on_release=on_release, faults=faults) as sc:
        peers = [sc.connect() for _ in range(n)]
        ids = [sc.session(p) for p in peers]
        for p in peers:
            p.queue(BYE)
            if not disconnect_in_recv:
                p.shut_write()
        want = len(GREETING) + len(BYE)
        sc.drive(peers, until=lambda: all(p.eof is not None for p in peers), clause="S13",
                 expected="every session to greet, answer and close (calls from callbacks)")
        for sid in ids:
            sc.released(sid, clause="S13", why="after calls made from inside its callbacks")
            if own_calls.get(sid) != (False, False):
                raise sc.fail("S8", f"send({sid}) and disconnect({sid}) from inside "
                              f"on_release({sid}) -> (False, False)",
                              f"they returned {own_calls.get(sid)}", [sid])
        for p in peers:
            if len(p.received) < want:
                raise sc.fail("S13", f"{want} bytes (greeting + answer) per peer",
                              f"a peer got {len(p.received)}", [p.session_id or 0])
            sc.settle(p, outbound_complete=p.eof == "EOF")


@pytest.mark.clause("S13")
@suite_settings(weight=0.5)
@given(threads=st.integers(2, 4), calls=st.integers(10, 200))
def test_s13_calls_from_foreign_threads_while_callbacks_run(conformance, threads, calls):
    """Application threads hammer send() while the server is inside on_recv for the same
    session and the peer keeps sending; at the end disconnect() from a thread: no deadlock,
    everything accepted arrives (S13, S4)."""
    with conformance.scenario(on_recv=lambda rec, sid, data: rec.send(sid, b"r"),
                              send_queue_limit=1 << 24) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(b"x" * calls, [1])
        errors: list[BaseException] = []

        def hammer() -> None:
            try:
                for _ in range(calls):
                    sc.server.send(sid, b"t")
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=hammer, name=f"app-thread-{i}", daemon=True)
                   for i in range(threads)]
        for w in workers:
            w.start()
        sc.drive([peer], until=lambda: peer.outbox_bytes == 0 and
                 all(not w.is_alive() for w in workers), clause="S13",
                 expected="application threads' send() calls to return while callbacks run",
                 session_ids=[sid])
        if errors:
            raise errors[0]
        done = threading.Thread(target=sc.rec.disconnect, args=(sid,), name="app-closer",
                                daemon=True)
        done.start()
        sc.drive([peer], until=lambda: peer.eof is not None and not done.is_alive(),
                 clause="S13", expected="disconnect() from an application thread to close",
                 session_ids=[sid])
        sc.released(sid, clause="S13", why="after disconnect() from an application thread")
