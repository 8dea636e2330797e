"""The fault injector (`conformance.faults`), on its own: schedules, each fault, the notes.

Most tests use one connected loopback pair per test, with the server end wrapped: what the
injector does to a real socket is the point, and a socketpair would hide what TCP does after
a reset. The schedule bookkeeping and `_prefix` are tested without sockets.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.faults import (
    Fault,
    FaultInjector,
    FaultPlan,
    SessionFaults,
    Step,
    _prefix,
)

SHORT3 = Step(Fault.SHORT, size=3)
Noted = tuple[str, str, int | None]  # what the note callback was given: fault, text, id


@contextmanager
def pair(faults: FaultInjector, sid: int = 1, *, blocking: bool = False,
         edge_triggered: bool = False) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(wrapped server end, client end) of one TCP connection on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2], timeout=5)
        conn, _ = listener.accept()
    conn.setblocking(blocking)
    server = faults.wrap_socket(conn, sid, edge_triggered=edge_triggered)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def injector(*schedules: SessionFaults, notes: list[Noted] | None = None) -> FaultInjector:
    def note(fault: str, text: str, sid: int | None) -> None:
        if notes is not None:
            notes.append((fault, text, sid))

    return FaultInjector(FaultPlan(tuple(schedules)), note)


# ---- schedules


def test_steps_are_taken_in_call_order_then_calls_are_exact() -> None:
    faults = injector(SessionFaults(recv=(Step(), SHORT3)))
    faults.wrap_socket(socket.socket(), 7).close()
    assert [faults.next(7, "recv") for _ in range(4)] == [Step(), SHORT3, Step(), Step()]
    assert faults.next(7, "send") == Step()  # each direction has its own schedule


def test_sessions_share_the_plan_cyclically_in_wrap_order() -> None:
    a, b = SessionFaults(recv=(SHORT3,)), SessionFaults(send=(SHORT3,))
    faults = injector(a, b)
    for sid in (10, 11, 12):
        faults.wrap_socket(socket.socket(), sid).close()
    assert [faults.next(sid, "recv") for sid in (10, 11, 12)] == [SHORT3, Step(), SHORT3]


def test_the_kth_peer_gets_the_kth_schedule_whoever_wraps_first() -> None:
    """Schedules follow the suite's connect order (by the peer's port), not the order in
    which the implementation's threads happen to wrap the sockets."""
    a, b = SessionFaults(recv=(SHORT3,)), SessionFaults()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        first = socket.create_connection(listener.getsockname()[:2])
        second = socket.create_connection(listener.getsockname()[:2])
        order = {first.getsockname()[1]: 0, second.getsockname()[1]: 1}
        faults = FaultInjector(FaultPlan((a, b)), peer_order=order.get)
        by_port = {addr[1]: conn for conn, addr in (listener.accept() for _ in range(2))}
        # Wrap the second peer's connection first.
        faults.wrap_socket(by_port[second.getsockname()[1]], 1).close()
        faults.wrap_socket(by_port[first.getsockname()[1]], 2).close()
        first.close()
        second.close()
    assert faults.next(1, "recv") == Step()  # the second peer: schedule b
    assert faults.next(2, "recv") == SHORT3  # the first peer: schedule a


def test_an_empty_plan_wraps_but_injects_nothing() -> None:
    faults = FaultInjector(FaultPlan())
    with pair(faults) as (server, client):
        client.sendall(b"hello")
        assert server.recv(100) == b"hello"
    assert not faults.injected


def test_hold_follows_the_schedule_then_is_zero() -> None:
    notes: list[Noted] = []
    faults = injector(SessionFaults(hold=(0.005, 0.0, 0.02)), notes=notes)
    faults.wrap_socket(socket.socket(), 3).close()
    assert [faults.hold(3) for _ in range(4)] == [0.005, 0.0, 0.02, 0.0]
    assert faults.hold(99) == 0.0  # a session never wrapped
    assert faults.injected["hold"] == 2 and len(notes) == 2


@given(sizes=st.lists(st.integers(0, 50), max_size=5), cap=st.none() | st.integers(1, 200))
def test_prefix_is_exactly_the_first_cap_bytes(sizes: list[int], cap: int | None) -> None:
    buffers = [bytes([i]) * n for i, n in enumerate(sizes)]
    whole = b"".join(buffers)
    cut = b"".join(bytes(v) for v in _prefix(buffers, cap))
    assert cut == (whole if cap is None else whole[:cap])


# ---- each fault on a real socket


def test_short_recv_and_send_move_at_most_the_cap() -> None:
    faults = injector(SessionFaults(recv=(SHORT3, SHORT3, SHORT3), send=(SHORT3, SHORT3)))
    with pair(faults) as (server, client):
        client.sendall(b"abcdefghij")
        buf = bytearray(100)
        assert server.recv_into(buf) == 3 and buf[:3] == b"abc"
        assert server.recv(100) == b"def"
        got = bytearray(100)
        assert server.recvmsg_into([memoryview(got)[:2], memoryview(got)[2:]])[0] == 3
        assert got[:3] == b"ghi"
        assert server.sendmsg([b"xy", b"zw"]) == 3
        assert server.send(b"12345") == 3
    assert faults.injected["short"] == 5


def test_would_block_raises_eagain_on_a_nonblocking_socket() -> None:
    notes: list[Noted] = []
    faults = injector(SessionFaults(recv=(Step(Fault.WOULD_BLOCK),),
                                    send=(Step(Fault.WOULD_BLOCK),)), notes=notes)
    with pair(faults) as (server, client):
        client.sendall(b"data")
        with pytest.raises(BlockingIOError):
            server.recv(10)
        with pytest.raises(BlockingIOError):
            server.send(b"x")
        assert server.recv(10) == b"data"  # the data was there all along
    assert [fault for fault, _, _ in notes] == ["would-block", "would-block"]
    assert notes[0][1] == "recv #1 of session 1: would-block"


@pytest.mark.parametrize("how", ["blocking", "edge-triggered"])
def test_would_block_is_never_injected_where_the_kernel_would_not(how: str) -> None:
    """A blocking socket never returns EAGAIN; an edge-triggered one returns it only when the
    next edge is coming (see the module docstring). The step is skipped, not deferred."""
    faults = injector(SessionFaults(recv=(Step(Fault.WOULD_BLOCK), SHORT3)))
    with pair(faults, blocking=how == "blocking",
              edge_triggered=how == "edge-triggered") as (server, client):
        client.sendall(b"abcdef")
        client.shutdown(socket.SHUT_WR)
        server.settimeout(5)
        assert server.recv(100) == b"abcdef"  # the would-block step passed unplayed
        assert server.recv(100) == b""  # and SHORT3 meets the EOF: nothing to cut
    assert "would-block" not in faults.injected


def test_interrupted_call_still_completes() -> None:
    faults = injector(SessionFaults(recv=(Step(Fault.INTERRUPTED, pause=0.001),)))
    with pair(faults, blocking=True) as (server, client):
        client.sendall(b"after the signal")
        assert server.recv(100) == b"after the signal"
    assert faults.injected["interrupted"] == 1


def test_reset_sends_rst_and_fails_the_call() -> None:
    notes: list[Noted] = []
    faults = injector(SessionFaults(send=(Step(), Step(Fault.RESET))), notes=notes)
    with pair(faults, sid=42, blocking=True) as (server, client):
        assert server.send(b"before") == 6
        with pytest.raises(OSError) as failed:
            server.send(b"after")
        assert isinstance(failed.value, ConnectionResetError | BrokenPipeError)
        assert client.recv(100) == b"before"
        with pytest.raises(ConnectionResetError):
            client.recv(100)  # the peer sees the RST
        assert server.fileno() >= 0  # the descriptor stays the implementation's to close
    assert faults.reset_ids == {42}
    assert (notes[-1][0], notes[-1][2]) == ("reset", 42)  # which ends the session (S2)


def test_the_wrapped_socket_keeps_its_timeout_and_descriptor() -> None:
    faults = injector(SessionFaults())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        conn, _ = listener.accept()
        conn.setblocking(False)
        fd = conn.fileno()
        wrapped = faults.wrap_socket(conn, 1)
        assert wrapped.fileno() == fd and conn.fileno() == -1  # detached, not duplicated
        assert wrapped.getblocking() is False
        assert isinstance(wrapped, socket.socket)
        wrapped.close()
        client.close()


# ---- the same faults for a Trio stream


def test_trio_stream_short_receive_split_send_and_reset() -> None:
    import trio

    faults = injector(SessionFaults(recv=(SHORT3, Step(Fault.WOULD_BLOCK), Step(Fault.RESET)),
                                    send=(SHORT3,)))

    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            client = socket.create_connection(listener.getsockname()[:2], timeout=5)
            conn, _ = listener.accept()
            stream = faults.wrap_stream(trio.SocketStream(trio.socket.from_stdlib_socket(conn)), 5)
            client.sendall(b"abcdef")
            assert await stream.receive_some(100) == b"abc"
            assert await stream.receive_some(100) == b"def"  # after waiting for readiness
            await stream.send_all(b"0123456789")  # two sends inside: 3 bytes, then 7
            assert client.recv(100, socket.MSG_WAITALL) == b"0123456789"
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some(100)
            await stream.aclose()
            client.close()

    trio.run(main)
    assert faults.reset_ids == {5}
    assert dict(faults.injected) == {"short": 2, "would-block": 1, "reset": 1}


# ---- accept(): EMFILE and ECONNABORTED on the listener


def accept_injector(*steps: Step, notes: list[Noted] | None = None) -> FaultInjector:
    def note(fault: str, text: str, sid: int | None) -> None:
        if notes is not None:
            notes.append((fault, text, sid))

    return FaultInjector(FaultPlan(accept=steps), note)


def test_accept_meets_its_steps_and_the_connection_stays_in_the_backlog() -> None:
    """EMFILE and ECONNABORTED take no connection: the next accept() gets it."""
    notes: list[Noted] = []
    faults = accept_injector(Step(Fault.EMFILE), Step(Fault.ABORTED), notes=notes)
    listener = faults.wrap_listener(socket.create_server(("127.0.0.1", 0)))
    with listener, socket.create_connection(listener.getsockname()[:2], timeout=5) as client:
        with pytest.raises(OSError) as emfile:
            listener.accept()
        with pytest.raises(ConnectionAbortedError):
            listener.accept()
        conn, addr = listener.accept()  # the schedule ran out: exact again
        with conn:
            assert addr == client.getsockname()
            assert type(conn) is socket.socket  # the accepted socket is not wrapped
    assert emfile.value.errno == errno.EMFILE
    assert dict(faults.injected) == {"emfile": 1, "aborted": 1}
    assert [(n[1], n[2]) for n in notes] == [("accept #1: emfile", None),
                                             ("accept #2: aborted", None)]


def test_emfile_lasts_its_pause_and_only_its_first_call_is_noted() -> None:
    notes: list[Noted] = []
    faults = accept_injector(Step(Fault.EMFILE, pause=0.05), Step(Fault.ABORTED), notes=notes)
    listener = faults.wrap_listener(socket.create_server(("127.0.0.1", 0)))
    listener.setblocking(False)
    with listener:
        began = time.monotonic()
        refused = 0
        while time.monotonic() - began < 0.04:  # well inside the limit's 50 ms
            with pytest.raises(OSError) as exc:
                listener.accept()
            assert exc.value.errno == errno.EMFILE
            refused += 1
        deadline = time.monotonic() + 5
        while faults.accept_fault() is Fault.EMFILE:  # bounded: the limit ends after 50 ms
            assert time.monotonic() < deadline
        with pytest.raises(BlockingIOError):  # the step after the limit: ABORTED was taken
            listener.accept()                # by accept_fault(); this call is exact
    assert refused > 1 and faults.injected["emfile"] >= refused
    assert [n[1] for n in notes] == ["accept #1: emfile(50 ms)", "accept #2: aborted"]


def test_trio_listener_raises_emfile_and_retries_aborted_itself() -> None:
    import trio

    faults = accept_injector(Step(Fault.ABORTED), Step(Fault.EMFILE))

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        listener = faults.wrap_trio_listener(listeners[0])
        client = socket.create_connection(listeners[0].socket.getsockname()[:2], timeout=5)
        with pytest.raises(OSError) as exc:  # ABORTED was retried inside; EMFILE surfaces
            await listener.accept()
        assert exc.value.errno == errno.EMFILE
        stream = await listener.accept()
        assert stream.socket.getpeername() == client.getsockname()
        await stream.aclose()
        await listener.aclose()
        client.close()

    trio.run(main)
    assert dict(faults.injected) == {"aborted": 1, "emfile": 1}
