"""The k-th peer's session gets the k-th fault schedule, although peers no longer bind a port
before connect(): the port is recorded just after connect() picked it, and the server may
accept (and wrap) the connection a moment before that (`Recorder.peer_order` waits)."""

from __future__ import annotations

import threading

from conformance._trace import Kind, Recorder


def test_the_server_can_see_a_connection_before_its_peer_recorded_the_port() -> None:
    rec = Recorder()
    first = rec.peer_connecting()
    rec.peer_connected(first, 40001)
    second = rec.peer_connecting()  # inside connect(): the kernel picked a port, unrecorded
    rec.on_connect(7, ("127.0.0.1", 40002))  # the server was quicker than the peer's thread
    found: list[int | None] = []
    lookup = threading.Thread(target=lambda: found.append(rec.peer_order(40002, timeout=30)))
    lookup.start()
    lookup.join(0.05)
    assert lookup.is_alive() and not found, "the lookup must wait while a peer connects"
    rec.peer_connected(second, 40002)
    lookup.join(30)
    assert found == [1]
    # The place in the timeline was taken before connect(): the on_connect comes after it,
    # so it is this peer's connection and not an earlier one from the same port.
    assert rec.session_of(40002, second.seq) == 7
    kinds = [(e.kind, e.detail) for e in rec.trace()]
    assert kinds.index((Kind.PEER, "peer :40002 connecting")) < kinds.index(
        (Kind.CONNECT, "('127.0.0.1', 40002)"))


def test_no_wait_for_a_port_no_peer_is_connecting_from() -> None:
    rec = Recorder()
    place = rec.peer_connecting()
    rec.peer_connected(place, None, "failed: EADDRNOTAVAIL")  # a failed connect ends its wait
    found: list[int | None] = []
    lookup = threading.Thread(target=lambda: found.append(rec.peer_order(40003, timeout=60)))
    lookup.start()
    lookup.join(30)
    assert found == [None]
    assert rec.trace()[-1].detail == "peer connect() failed: EADDRNOTAVAIL"
