"""Hypothesis strategies shared by the properties: payloads, chunkings, schedules.

Payloads are drawn as (size, seed) and expanded with a seeded PRNG: Hypothesis shrinks the
size toward a minimal counterexample without generating megabytes byte by byte.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

__all__ = ["chunkings", "make_payload", "payloads", "tagged"]

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
