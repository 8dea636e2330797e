"""Opting in, seen from the harness: a server with `inject_faults` meets the plan, one without
runs the same scenario fault-free (docs/plugging-in.md §7)."""

from __future__ import annotations

from typing import Any

from conformance._apps import echo
from conformance._harness import Harness
from conformance._loading import Impl
from conformance._timeouts import Timeouts
from conformance._trace import Kind
from conformance.api import ServerConfig, SessionHandler
from conformance.faults import Fault, FaultPlan, SessionFaults, Step
from impls.select_ import SelectServer

PLAN = FaultPlan((SessionFaults(recv=(Step(Fault.SHORT, size=2), Step(Fault.RESET))),))


class BlackBox:
    """A server with the four methods of the contract and nothing else."""

    def __init__(self, config: ServerConfig) -> None:
        self._inner = SelectServer(config)

    def start(self, handler: SessionHandler, host: str = "127.0.0.1",
              port: int = 0) -> tuple[str, int]:
        return self._inner.start(handler, host, port)

    def send(self, session_id: int, data: bytes) -> bool:
        return self._inner.send(session_id, data)

    def disconnect(self, session_id: int) -> bool:
        return self._inner.disconnect(session_id)

    def stop(self) -> None:
        self._inner.stop()


def echo_once(factory: Any) -> tuple[Any, list[str]]:
    with Harness(Impl("under-test", factory), Timeouts()).scenario(
            on_recv=echo, faults=PLAN) as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(b"hello")
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected="the echo, then EOF or a reset")
        sc.released(sid, clause="S5")
        sc.settle(peer)
        notes = [e.describe() for e in sc.rec.trace() if e.kind in (Kind.FAULT, Kind.FAULT_RESET)]
        return sc.faults, notes


def test_a_server_that_opts_in_meets_the_plan() -> None:
    faults, notes = echo_once(SelectServer)
    assert faults is not None and faults.injected["short"] == 1
    assert any(n.startswith("fault: recv #1 of session ") and "short(2)" in n for n in notes)


def test_a_server_without_inject_faults_runs_fault_free() -> None:
    faults, notes = echo_once(BlackBox)
    assert faults is None
    assert not notes
