"""Implementations the benchmark must survive: each echoes a while, then breaks.

`python -m conformance.bench --impl=tests.tools._broken:stops_echoing` must end with a clear
message, never hang (tests/tools/test_bench.py).
"""

from __future__ import annotations

import os

from conformance.api import ServerConfig
from impls.select_ import SelectServer

# Enough for every connection's first echo (the run gets going), too few for a window.
GOOD_SENDS = 300


class StopsEchoing(SelectServer):
    """send() says True but, after GOOD_SENDS calls, queues nothing: the peers wait for
    echoes that never come."""

    _sends = 0

    def send(self, session_id: int, data: bytes) -> bool:
        self._sends += 1
        return True if self._sends > GOOD_SENDS else super().send(session_id, data)


class Crashes(SelectServer):
    """After GOOD_SENDS calls to send(), the whole process dies."""

    _sends = 0

    def send(self, session_id: int, data: bytes) -> bool:
        self._sends += 1
        if self._sends > GOOD_SENDS:
            os._exit(3)
        return super().send(session_id, data)


def stops_echoing(config: ServerConfig) -> StopsEchoing:
    return StopsEchoing(config)


def crashes(config: ServerConfig) -> Crashes:
    return Crashes(config)
