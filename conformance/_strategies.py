"""Hypothesis strategies shared by the properties: payloads, chunkings, schedules.

Payloads are drawn as (size, seed) and expanded with a seeded PRNG: Hypothesis shrinks the
size toward a minimal counterexample without generating megabytes byte by byte.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

from .faults import Fault, FaultPlan, SessionFaults, Step

__all__ = ["chunkings", "fault_plans", "make_payload", "payloads", "tagged"]

# Bytes a loopback connection buffers in the kernel (both socket buffers and the window),
# measured on the 2-core CI machines at 3-4 MB. A transfer beyond this is guaranteed to meet
# a full pipe, which is what makes partial sends happen.
KERNEL_BUFFERED = 4 << 20


class Payload(bytes):
    """Bytes that print as the call that makes them: a falsifying example shows
    `make_payload(65537, 0)`, not 180 kB of escapes."""

    size: int
    seed: int

    def __repr__(self) -> str:
        return f"make_payload({self.size}, {self.seed})"


def make_payload(size: int, seed: int) -> bytes:
    payload = Payload(random.Random(seed).randbytes(size))
    payload.size, payload.seed = size, seed
    return payload


def payloads(min_size: int = 1, max_size: int = 64 << 10) -> st.SearchStrategy[bytes]:
    return st.builds(make_payload, st.integers(min_size, max_size), st.integers(0, 2**32))


def chunkings(max_chunk: int = 64 << 10) -> st.SearchStrategy[list[int]]:
    """How a peer splits what it sends: sizes cycled over the payload (empty = one write)."""
    return st.lists(st.integers(1, max_chunk), max_size=6)


def tagged(tag: int, size: int) -> bytes:
    """A payload that says whose it is: a byte delivered to the wrong session is visible."""
    unit = f"<{tag}>".encode()
    return (unit * (size // len(unit) + 1))[:size]


def fault_plans(*, resets: bool = False, accept: bool = False) -> st.SearchStrategy[FaultPlan]:
    """Faults for the sessions of a scenario (`conformance.faults`), shrinking toward none.

    Up to 6 steps per direction for up to 3 session schedules (cycled over the sessions):
    enough to put a fault at any early call, small enough to shrink fast.
    Pauses stay at 2 ms or less, so even a one-thread server meeting a hundred of them stays
    far inside every deadline. RESET only with `resets`: a test that draws it must relax the
    reset sessions' expectations (`FaultInjector.reset_ids`). With `accept`, also up to 4
    steps for the listener's accept() calls: EMFILE (out of descriptors for up to 0.2 s, which
    a back-off of 0.1 s rides out) and ABORTED (ECONNABORTED).
    """
    sizes = st.sampled_from([1, 2, 7]) | st.integers(1, 4096)
    pauses = st.sampled_from([0.0002, 0.001, 0.002])
    kinds = [
        st.just(Step()),
        st.builds(Step, st.just(Fault.SHORT), size=sizes),
        st.just(Step(Fault.WOULD_BLOCK)),
        st.builds(Step, st.just(Fault.INTERRUPTED), pause=pauses),
    ]
    if resets:
        kinds.append(st.just(Step(Fault.RESET)))
    steps = st.lists(st.one_of(kinds), max_size=6).map(tuple)
    holds = st.lists(st.sampled_from([0.0, 0.001, 0.005, 0.02]), max_size=6).map(tuple)
    schedule = st.builds(SessionFaults, recv=steps, send=steps, hold=holds)
    sessions = st.lists(schedule, max_size=3).map(tuple)
    if not accept:
        return st.builds(FaultPlan, sessions)
    at_limit = st.sampled_from([0.0, 0.001, 0.02, 0.2])
    accept_steps = st.lists(st.one_of(
        st.just(Step()),
        st.builds(Step, st.just(Fault.EMFILE), pause=at_limit),
        st.just(Step(Fault.ABORTED)),
    ), max_size=4).map(tuple)
    return st.builds(FaultPlan, sessions, accept_steps)
