"""The iocp model under injected completion faults: split, delayed and reordered completions.

`impls/_completion_port.py` consults a `CompletionFaults` before each RECV/SEND attempt (it may
cap the bytes: a short completion) and before it queues a packet (it may hold it back: held
packets come out in deadline order, so completions of different sessions are reordered). These
tests install faults on the port of a real `IocpServer` and run scenarios through the
conformance harness, so every example also ends with stop() and every session released (S11)
and with the trace check of S1-S4 -- S2 among them: per id on_connect, on_recv*, on_release
once and last, never overlapping.

How the faults get in: `FaultyIocpServer` is IocpServer with start() extended -- the real
start(), then `faults` set on the port it created. impls/iocp.py is not edited and no global is
patched. Nothing escapes the faults by coming early: start() only *issues* its AcceptEx
operations, and every attempt and every completion consults the port's `faults` when it
happens. The port's `post_after` of that one port is wrapped too, only to tell the faults
which linger timers were armed (the model arms one only for a close with bytes left to flush).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from functools import partial

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from conformance._apps import echo
from conformance._harness import Harness
from conformance._loading import Impl
from conformance._scenario import Scenario
from conformance._strategies import tagged
from conformance._timeouts import Timeouts
from conformance._trace import Kind, Recorder
from conformance.api import ServerConfig, SessionHandler
from impls._completion_port import ECANCELED, OpKind, Overlapped, Packet
from impls.iocp import IocpServer, Linger, Session

# Few examples, each a real server: the whole file stays well under 30 s on 2 cores.
FEW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_DELAY = 0.020  # seconds a randomly held packet waits at most


class FaultyIocpServer(IocpServer):
    """IocpServer whose completion port runs with `faults` (see the module docstring)."""

    def __init__(self, config: ServerConfig, faults: Faults) -> None:
        super().__init__(config)
        self.faults = faults

    def start(
        self, handler: SessionHandler, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, int]:
        bound = super().start(handler, host, port)
        assert self._port is not None
        self._port.faults = self.faults
        arm = self._port.post_after

        def post_after(delay: float, key: object, overlapped: Overlapped) -> None:
            if isinstance(key, Linger):
                self.faults.armed(key.session_id)
            arm(delay, key, overlapped)

        self._port.post_after = post_after  # type: ignore[method-assign]
        return bound


def harness(faults: Faults) -> Harness:
    return Harness(Impl("iocp+faults", lambda config: FaultyIocpServer(config, faults)),
                   Timeouts())


def received_at_least(rec: Recorder, sid: int, size: int) -> bool:
    return len(rec.received(sid)) >= size


def session_of(packet: Packet) -> int | None:
    return packet.key.id if isinstance(packet.key, Session) else None


class Faults:
    """Faults that inject nothing and watch. Subclasses override `split` and `hold`.

    Watching: a packet queued for a session after its on_release is recorded in `late` (the
    IOCount rule says there is none: the release waits for every completion, S2/S8); each
    linger timer is noted in the timeline when it is armed and when it fires. Called under
    the port's lock (`armed`: the session's): the only thing it calls is the recorder, which
    never calls the server holding its own lock.
    """

    def __init__(self) -> None:
        self.rec: Recorder | None = None  # set once the scenario exists, for notes
        self.released: dict[int, float] = {}  # id -> time.monotonic() of its on_release
        self.late: list[str] = []
        self.timers: dict[int, int] = {}  # id -> seq of the note "its linger timer fired"
        self.armed_for: set[int] = set()  # ids whose close armed a linger timer

    def armed(self, sid: int) -> None:
        self.armed_for.add(sid)
        if self.rec is not None:
            self.rec.note(f"faults: a linger timer armed for {sid}", session_id=sid)

    def cap(self, op: Overlapped) -> int | None:
        return self.split(op)

    def delay(self, packet: Packet) -> float:
        sid = session_of(packet)
        if sid is not None and sid in self.released:
            self.late.append(f"{packet} queued after on_release({sid})")
        if isinstance(packet.key, Linger) and self.rec is not None:
            sid = packet.key.session_id
            self.timers[sid] = self.rec.note(f"faults: the linger timer of {sid} fired",
                                             session_id=sid)
        return self.hold(packet)

    def split(self, op: Overlapped) -> int | None:
        return None

    def hold(self, packet: Packet) -> float:
        return 0.0

    def on_release(self, rec: Recorder, sid: int, data: bytes) -> None:
        """The scenario's on_release hook."""
        self.released[sid] = time.monotonic()

    def watch(self, sc: Scenario) -> None:
        """Note what the faults see in the scenario's timeline."""
        self.rec = sc.rec

    def check(self, sc: Scenario) -> None:
        if self.late:
            raise sc.fail("S2", "no completion for a session after its on_release (IOCount)",
                          "; ".join(self.late[:3]))


@dataclass
class Plan:
    """What Hypothesis draws for `RandomFaults`: a seed and how hard to hit."""

    seed: int
    split: float  # chance that an attempt is capped
    caps: list[int] = field(default_factory=lambda: [1])  # caps to pick from; 1: one byte
    hold: float = 0.5  # chance that a packet is held, for up to MAX_DELAY


plans = st.builds(
    Plan, seed=st.integers(0, 2**32 - 1), split=st.floats(0.2, 0.9),
    caps=st.lists(st.just(1) | st.integers(1, 700), min_size=1, max_size=4),
    hold=st.floats(0.1, 1.0),
)


class RandomFaults(Faults):
    """Seeded: caps attempts at a random one of `plan.caps` bytes, holds packets 0-20 ms.

    Counts how often a held packet is overtaken by a later one of another session -- a
    reordering across sessions -- for Hypothesis' statistics.
    """

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.holding: list[tuple[float, int | None]] = []  # (deadline, session) still held
        self.splits = self.reorders = 0

    def split(self, op: Overlapped) -> int | None:
        if self.rng.random() >= self.plan.split:
            return None
        self.splits += 1
        return self.rng.choice(self.plan.caps)

    def hold(self, packet: Packet) -> float:
        delay = self.rng.uniform(0, MAX_DELAY) if self.rng.random() < self.plan.hold else 0.0
        now, sid = time.monotonic(), session_of(packet)
        self.holding = [(at, s) for at, s in self.holding if at > now]
        if any(s != sid for at, s in self.holding if at > now + delay):
            self.reorders += 1
        if delay:
            self.holding.append((now + delay, sid))
        return delay

    def statistics(self) -> None:
        event("capped attempts: " + ("some" if self.splits else "none"))
        event("reordered across sessions: " + ("yes" if self.reorders else "no"))


@FEW
@given(sizes=st.lists(st.integers(1, 3000), min_size=2, max_size=5), plan=plans)
@example(sizes=[200, 200, 200], plan=Plan(seed=0, split=1.0, caps=[1], hold=0.0))
def test_split_and_reordered_completions_keep_every_stream(sizes, plan):
    """Echo on several sessions at once, with attempts capped (down to one byte) and packets
    held 0-20 ms: each session's on_recv data is exactly its peer's bytes, in order (S3); each
    peer receives exactly its echo, in order, then EOF (S4, S5); callbacks per id in order,
    never overlapping, nothing after on_release (S2); stop() releases everything (S11)."""
    faults = RandomFaults(plan)
    with harness(faults).scenario(on_recv=echo, on_release=faults.on_release) as sc:
        faults.watch(sc)
        peers = [sc.connect() for _ in sizes]
        ids = [sc.session(p) for p in peers]
        for p, sid, size in zip(peers, ids, sizes, strict=True):
            p.queue(tagged(sid, size))
            p.shut_write()
        sc.drive(peers, until=lambda: all(p.eof for p in peers), clause="S4",
                 expected="every peer to read its whole echo, then EOF")
        for sid in ids:
            sc.released(sid, clause="S5", why="after its peer's FIN and the echo's flush")
        for p in peers:
            sc.settle(p, inbound_complete=True, outbound_complete=True)
        faults.check(sc)
    faults.statistics()


@FEW
@given(data=st.lists(st.integers(1, 300), min_size=1, max_size=4))
def test_one_byte_completions_deliver_one_byte_at_a_time(data):
    """Every WSARecv and WSASend completes with one byte: on_recv gets one byte per call, in
    order (S3: a stream has no message boundaries), and each peer its whole echo (S4)."""

    class OneByte(Faults):
        def split(self, op: Overlapped) -> int | None:
            return 1

    faults = OneByte()
    with harness(faults).scenario(on_recv=echo, on_release=faults.on_release) as sc:
        peers = [sc.connect() for _ in data]
        ids = [sc.session(p) for p in peers]
        for p, sid, size in zip(peers, ids, data, strict=True):
            p.queue(tagged(sid, size))
        sc.drive(peers, until=lambda: all(len(p.received) == len(p.sent) > 0 for p in peers)
                 and all(p.outbox_bytes == 0 for p in peers), clause="S4",
                 expected="every peer to receive its whole echo")
        longer = [e for e in sc.rec.trace() if e.kind is Kind.RECV and len(e.data) != 1]
        if longer:
            raise sc.fail("S3", "one byte per on_recv when every WSARecv moves one byte",
                          longer[0].describe(), ids)
        for p in peers:
            sc.settle(p)
        faults.check(sc)


ENDINGS = ["fin", "reset", "disconnect", "stop"]


@FEW
@given(lives=st.lists(st.tuples(st.integers(0, 3000), st.sampled_from(ENDINGS)),
                      min_size=2, max_size=5), plan=plans)
def test_every_ending_under_faults_releases_once(lives, plan):
    """Sessions ending by FIN, reset, disconnect() or stop() while their completions are
    split and reordered: on_release exactly once and last, never overlapping another callback
    (S2); the data is each peer's own (S3); after the release send() and disconnect() on the id
    return False (S8); stop() releases the rest (S11)."""
    faults = RandomFaults(plan)
    with harness(faults).scenario(on_recv=echo, on_release=faults.on_release) as sc:
        faults.watch(sc)
        peers = [sc.connect() for _ in lives]
        ids = [sc.session(p) for p in peers]
        for p, sid, (size, _) in zip(peers, ids, lives, strict=True):
            p.queue(tagged(sid, size))
        sc.drive(peers, until=lambda: all(p.outbox_bytes == 0 for p in peers), clause="S3",
                 expected="every peer's bytes to be taken by the server")
        for p, sid, (size, ending) in zip(peers, ids, lives, strict=True):
            delivered = partial(received_at_least, sc.rec, sid, size)
            sc.wait(delivered, clause="S3", session_ids=[sid],
                    expected=f"on_recv to deliver the {size} bytes the peer of {sid} sent")
            if ending == "fin":
                p.shut_write()
            elif ending == "reset":
                p.reset()
            elif ending == "disconnect" and not sc.rec.disconnect(sid):
                raise sc.fail("S9", f"disconnect({sid}) -> True for a live session",
                              "it returned False", [sid])
        for sid, (_, ending) in zip(ids, lives, strict=True):
            if ending != "stop":
                sc.released(sid, clause="S2", why="after its connection ended")
                if sc.rec.send(sid, b"late") or sc.rec.disconnect(sid):
                    raise sc.fail("S8", f"send/disconnect({sid}) -> False after on_release",
                                  "one returned True", [sid])
        for p in peers:
            sc.settle(p, inbound_complete=True)
        faults.check(sc)
    faults.statistics()


class HoldLast(Faults):
    """Holds completions of the session `target` for `seconds` each, and keeps the time of
    each hold. `which` says whose: "sends", every WSASend's; "cancelled recv", the goodbye's
    WSASend (those issued from `goodbye` on) and the WSARecv cancelled once it went out."""

    def __init__(self, which: str, seconds: float) -> None:
        super().__init__()
        self.which, self.seconds = which, seconds
        self.target: int | None = None
        self.goodbye = False  # set by the test just before it sends the goodbye
        self.held_at: list[float] = []
        self.recvs: list[Overlapped] = []  # every WSARecv issued, in order (noted, too)

    def split(self, op: Overlapped) -> int | None:
        if op.kind is OpKind.RECV and op not in self.recvs:  # its first attempt: just issued
            self.recvs.append(op)
            if self.rec is not None:
                self.rec.note(f"faults: WSARecv #{len(self.recvs)} issued")
        return None

    def hold(self, packet: Packet) -> float:
        ov = packet.overlapped
        if session_of(packet) != self.target or ov is None:
            return 0.0
        if self.which == "cancelled recv":
            wanted = ((ov.kind is OpKind.RECV and packet.error == ECANCELED)
                      or (ov.kind is OpKind.SEND and self.goodbye))
        else:  # "sends": every WSASend completion, the last one among them
            wanted = ov.kind is OpKind.SEND
        if not wanted:
            return 0.0
        self.held_at.append(time.monotonic())
        if self.rec is not None:
            self.rec.note(f"faults: holding the {ov.kind.value} completion of {self.target} "
                          f"(error {packet.error}) for {self.seconds:g} s",
                          session_id=self.target)
        return self.seconds


@settings(FEW, max_examples=4)
@given(which=st.sampled_from(["cancelled recv", "sends"]), seconds=st.floats(0.05, 0.3),
       size=st.integers(1, 3000))
def test_a_held_last_completion_delays_the_release(which, seconds, size):
    """The last completion of a closing session is held back -- the cancelled WSARecv after
    disconnect() and its goodbye's flush, or the echo's WSASend while the peer's FIN arrives.
    A completion cannot arrive after the release (the IOCount rule); instead the release
    waits: on_release comes only after every held completion was queued (S2, S8), the bytes
    all arrive and the peer sees EOF (S4, S5, S9).

    Both closes begin with bytes still to flush -- the goodbye's WSASend is held; the FIN
    comes, as a rule, while the echo's is -- so each arms a linger timer (a close with nothing
    queued arms none). The flush ends long before linger, the release follows, and the timer
    fires after it and finds nothing: no callback for the old id, and a session connected
    meanwhile is untouched (S8)."""
    faults = HoldLast(which, seconds)
    linger = 2 * seconds + 0.5  # up to two holds in a row before the release, and time to spare
    with harness(faults).scenario(on_recv=echo, on_release=faults.on_release,
                                  linger=linger) as sc:
        faults.watch(sc)
        first = sc.connect()
        a = faults.target = sc.session(first)
        first.queue(tagged(a, size))
        flushing = None  # "cancelled recv": did disconnect() surely find the goodbye in flight?
        if which == "sends":
            first.shut_write()  # the FIN arrives while the echo's completions are held
        else:
            sc.drive([first], until=lambda: len(first.received) >= size, clause="S4",
                     expected=f"the peer of {a} to receive its echo", session_ids=[a])
            # The only connection so far: its 2nd WSARecv is the one RecvPost issues after
            # on_recv returned. Once it is issued, the close must cancel it.
            sc.wait(lambda: len(faults.recvs) >= 2, clause="S3", session_ids=[a],
                    expected=f"a WSARecv re-posted for {a} after its on_recv returned")
            # A goodbye, then disconnect(): its WSASend completion is held, so the close
            # begins with a flush. Once the flush completes: FIN, and CancelIoEx on the recv.
            faults.goodbye = True
            if not sc.rec.send(a, b"bye"):
                raise sc.fail("S8", f"send({a}) -> True for a live session", "it returned False",
                              [a])
            if not sc.rec.disconnect(a):
                raise sc.fail("S9", f"disconnect({a}) -> True", "it returned False", [a])
            # Unless this thread was late by a whole hold, the WSASend was still in flight.
            flushing = bool(faults.held_at) and time.monotonic() < faults.held_at[0] + seconds
        sc.drive([first], until=lambda: first.eof is not None, clause="S5",
                 expected=f"the peer of {a} to read its echo and EOF", session_ids=[a])
        sc.released(a, clause="S2", why="once its held completion came",
                    timeout=sc.timeouts.release + 2 * seconds)
        if not faults.held_at:
            raise sc.fail("S2", f"a completion of {a} to have been held", "none was", [a])
        early = [at for at in faults.held_at if faults.released[a] < at + seconds]
        if early:
            raise sc.fail("S2", f"on_release({a}) only after its held completions were queued",
                          f"it came {faults.released[a] - early[-1]:.3f} s after a hold of "
                          f"{seconds:g} s began", [a])
        if flushing and a not in faults.armed_for:
            raise sc.fail("S9", f"disconnect({a}) with its goodbye still in flight to arm a "
                          "linger timer (else a peer that never reads keeps the session)",
                          "no timer was armed", [a])
        event(f"{which}: linger timer " + ("armed" if a in faults.armed_for else "not armed"))
        second = sc.connect()  # may well get the released session's socket handle
        b = sc.session(second)
        if a in faults.armed_for:  # the stale timer: it fires after the release, on nobody
            sc.wait(lambda: a in faults.timers, clause="S8", timeout=linger + sc.timeouts.io,
                    expected=f"the linger timer of {a} to fire", session_ids=[a])
            released_seq = next(e.end_seq for e in sc.rec.trace()
                                if e.kind is Kind.RELEASE and e.session_id == a)
            if faults.timers[a] < released_seq:
                raise sc.fail("S8", f"the linger timer of {a} to fire after on_release({a})",
                              "it fired before", [a])
        second.queue(tagged(b, 100))
        second.shut_write()
        sc.drive([second], until=lambda: second.eof is not None, clause="S8",
                 expected=f"the peer of {b} to get its echo and EOF, untouched by the stale "
                 f"timer of {a}", session_ids=[a, b])
        if second.eof != "EOF":
            raise sc.fail("S8", f"session {b} to end gracefully", f"its peer read {second.eof}",
                          [a, b])
        sc.released(b, clause="S5")
        sc.settle(first, inbound_complete=True, outbound_complete=True)
        sc.settle(second, inbound_complete=True, outbound_complete=True)
        faults.check(sc)
