"""The emulated completion port itself (`impls/_completion_port.py`), below any server.

GetQueuedCompletionStatus hands a queued packet to any thread waiting on the port. The
emulation has two kinds of waiting worker: one plays the kernel in epoll, the others sleep on a
Condition. A packet must reach one of them however the wake-ups fall.
"""

from __future__ import annotations

import threading
import time

from impls._completion_port import CompletionPort, Packet

WAIT = 5.0  # seconds: bounds each wait below; on this machine each takes milliseconds


def test_two_packets_reach_two_waiting_workers() -> None:
    """One worker waits in epoll, one sleeps; two packets are posted back to back, and each
    worker takes one packet per call (GetQueuedCompletionStatus, not ...Ex).

    The classic lost wake-up: the first post notifies the sleeper; the second finds it still
    counted as a sleeper (it has not run yet) and notifies nobody; the woken worker takes one
    packet, and the second waits for the epoll worker's next event -- with no socket and no
    timer, forever. That is stop() posting one QUIT per worker, and a worker never quitting.
    """
    port = CompletionPort()
    taken: list[Packet] = []

    def worker() -> None:
        packet = port.get(timeout=WAIT)
        if packet is not None:
            taken.append(packet)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + WAIT
        while True:  # until one worker is in epoll and the other asleep
            with port._lock:
                if port._polling and port._sleepers == 1:
                    break
            assert time.monotonic() < deadline, "the two workers never both waited on the port"
            time.sleep(0.001)
        port.post("first", None)
        port.post("second", None)
        for w in workers:
            w.join(WAIT)
        assert sorted(str(p.key) for p in taken) == ["first", "second"], (
            f"each waiting worker takes one packet; taken: {[p.key for p in taken]}, "
            f"still queued: {[p.key for p in port._packets]}")
    finally:
        for w in workers:
            w.join(WAIT)  # each returns within its get() timeout
        port.close()
