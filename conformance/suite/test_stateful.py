"""A stateful model of peers and their sessions, checked against the implementation step by step.

Hypothesis generates a sequence of steps -- connect, a peer sends, the server sends, a peer
stops or resumes reading, half-closes, resets, the server disconnects, a stale id is used --
and after every step the implementation must agree with a model of what must have happened.
When it does not, Hypothesis shrinks the sequence to a few readable steps, so a failure reads
like a bug report: "connect; peer 0 sends 3 bytes; server disconnects 0; send(0) -> True".
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import cast

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from conformance._apps import echo
from conformance._checker import ConformanceFailure, check_identity, check_lifecycle
from conformance._harness import Harness
from conformance._peers import Peer
from conformance._profiles import suite_settings
from conformance._scenario import Scenario
from conformance._strategies import fault_plans, tagged
from conformance.faults import FaultPlan


@dataclass(eq=False)
class Model:
    """What the test knows about one peer and its session."""

    peer: Peer
    sid: int
    sent: int = 0  # bytes the peer sent (all must reach on_recv: S3)
    paused: bool = False

    def __repr__(self) -> str:  # the shrunk steps print peers by session id
        return f"session{self.sid}"


class SessionMachine(RuleBasedStateMachine):
    """Peers and sessions under generated steps; invariants are clauses S1, S2."""

    peers = Bundle("peers")

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness
        self._cm: contextlib.AbstractContextManager[Scenario] | None = None
        self.open: list[Model] = []

    @initialize(faults=fault_plans())
    def start(self, faults: FaultPlan) -> None:
        """The server, with the faults it will meet (if it opts in): the first step, so a
        counterexample shows them and shrinks them with the rest."""
        self._cm = self.harness.scenario(on_recv=echo, faults=faults)
        self.sc: Scenario = self._cm.__enter__()

    # ---- rules: the Session operations and what a peer can do

    @rule(target=peers)
    def connect(self) -> Model:
        peer = self.sc.connect()
        model = Model(peer, self.sc.session(peer))
        self.open.append(model)
        return model

    @rule(m=peers, size=st.integers(1, 4096))
    def peer_sends(self, m: Model, size: int) -> None:
        data = tagged(m.sid, size)
        m.peer.queue(data)
        m.sent += size
        self.sc.drive([m.peer], until=lambda: m.peer.outbox_bytes == 0, clause="S3",
                      expected="the peer's bytes to be taken", stall=self.sc.timeouts.call)
        self.sc.wait(lambda: len(self.sc.rec.received(m.sid)) >= m.sent, clause="S3",
                     expected=f"on_recv to deliver all {m.sent} bytes of session {m.sid}",
                     actual=lambda: f"{len(self.sc.rec.received(m.sid))} delivered",
                     session_ids=[m.sid])

    @rule(m=peers, size=st.integers(0, 4096))
    def server_sends(self, m: Model, size: int) -> None:
        if not self.sc.rec.send(m.sid, tagged(m.sid, size)):
            raise self.sc.fail("S7", f"send({m.sid}, {size} bytes) -> True: the session is "
                               "open and far below its queue limit", "it returned False",
                               [m.sid])

    @rule(m=peers)
    def peer_pauses_or_resumes(self, m: Model) -> None:
        m.paused = not m.paused
        (m.peer.pause_reading if m.paused else m.peer.resume_reading)()

    @rule(m=consumes(peers), how=st.sampled_from(["fin", "reset", "disconnect"]))
    def session_ends(self, m: Model, how: str) -> None:
        if how == "fin":
            m.peer.resume_reading()
            m.peer.shut_write()
        elif how == "reset":
            m.peer.reset()
        elif not self.sc.rec.disconnect(m.sid):
            raise self.sc.fail("S9", f"disconnect({m.sid}) -> True for an open session",
                               "it returned False", [m.sid])
        if how != "reset":
            m.peer.resume_reading()
            self.sc.drive([m.peer], until=lambda: m.peer.eof is not None, clause="S9",
                          expected=f"the peer of {m.sid} to read to EOF after the {how}",
                          stall=self.sc.timeouts.call, session_ids=[m.sid])
        self.sc.released(m.sid, clause="S5" if how == "fin" else "S9" if how == "disconnect"
                         else "S12", why=f"after the {how}")
        if self.sc.rec.send(m.sid, b"stale") or self.sc.rec.disconnect(m.sid):
            raise self.sc.fail("S8", f"send/disconnect({m.sid}) -> False once released",
                               "one returned True", [m.sid])
        # A graceful end promises the peer every accepted byte, then EOF (S4, S5, S9).
        self.open.remove(m)
        self.sc.settle(m.peer, inbound_complete=True,
                       outbound_complete=how != "reset" and m.peer.eof == "EOF")

    # ---- invariants: clauses that must hold after every step

    @invariant()
    def s1_ids_never_reused(self) -> None:
        self._verdict(check_identity(self.sc.rec.trace()))

    @invariant()
    def s2_callbacks_in_order_and_never_overlapping(self) -> None:
        self._verdict(check_lifecycle(self.sc.rec.trace(), final=False))

    def _verdict(self, violations: list) -> None:  # type: ignore[type-arg]
        if violations:
            raise ConformanceFailure.from_violations(violations, self.sc.rec.trace())

    def teardown(self) -> None:
        # Called from a `finally`: if a step failed, let the scenario clean up around that
        # failure; otherwise stop(), S11, and the S1-S4 check of the whole trace.
        failure = sys.exc_info()[1]
        if self._cm is None:
            return  # the server never started
        if failure is None:
            for m in self.open:
                self.sc.settle(m.peer, inbound_complete=True)  # S3 exact; S4 a prefix so far
            self._cm.__exit__(None, None, None)
        else:
            self._cm.__exit__(type(failure), failure, failure.__traceback__)


@pytest.mark.clause("S1", "S2", "S3", "S5", "S8", "S9", "S12")
def test_stateful_sessions_agree_with_the_model(conformance):
    """Generated sequences of connects, sends both ways, pauses, FINs, resets, disconnects
    and stale-id calls; the model and the implementation agree after every step."""
    base = suite_settings()
    # Hypothesis takes any factory of machines, though newer versions type it as a class.
    factory = cast("type[RuleBasedStateMachine]", lambda: SessionMachine(conformance))
    run_state_machine_as_test(factory, settings=base.__class__(base, stateful_step_count=20))
