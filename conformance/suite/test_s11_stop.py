"""S11: stop() releases every session, closes every socket, ends every thread; idempotent.

The harness already requires, at the end of every scenario, that stop() returns within its
deadline and that on_release came for every session before it did. These properties add the
rest: the listener is closed, later calls return False, a second stop() is harmless, and
nothing leaks across start/stop cycles (fds and threads are counted after a warm-up cycle, so
a framework's once-per-process threads are not mistaken for leaks).
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._calls import bounded_call
from conformance._environment import environment_errors
from conformance._profiles import suite_settings
from conformance._strategies import fault_plans, payloads


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


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
                 expected="the peers' bytes to be taken by the server")
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
@given(sessions=st.integers(1, 8), cycles=st.integers(2, 3))
def test_s11_no_leaks_across_cycles(conformance, sessions, cycles):
    """Start/stop cycles with live sessions: after a warm-up cycle, neither the number of open
    fds nor of threads grows from one cycle to the next (S11)."""

    def cycle() -> None:
        with conformance.scenario(on_recv=echo) as sc:
            peers = [sc.connect() for _ in range(sessions)]
            for p in peers:
                sc.session(p)
                p.queue(b"hello")
            sc.drive(peers, until=lambda: all(len(p.received) == 5 for p in peers),
                     clause="S3", expected="every session to echo once")

    cycle()  # warm-up: lazily started framework threads and caches
    fds, threads = open_fds(), threading.active_count()
    for _ in range(cycles):
        cycle()
    grown_fds, grown_threads = open_fds() - fds, threading.active_count() - threads
    if grown_fds > 0 or grown_threads > 0:
        names = sorted(t.name for t in threading.enumerate())
        raise AssertionError(
            f"S11 stop: {cycles} start/stop cycles left {grown_fds} more open fds and "
            f"{grown_threads} more threads than after the warm-up (threads now: {names})"
        )
