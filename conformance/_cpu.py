"""How busy the implementation's threads are: S6's spin check, whatever the machine's load.

`time.process_time()` counts the CPU a process *got*. On a loaded machine -- CI runs two
workers on two cores, each with servers and subprocesses of its own -- a server spinning in
a busy loop gets a fraction of a core, and a limit on CPU time lets it pass (measured: a
spinning thread got 0.08-0.3 of a core next to six other busy processes). A thread that spins
is never asleep, though: it is either on a core or in the run queue waiting for one. Linux
counts both, per thread, in `/proc/self/task/<tid>/schedstat` (nanoseconds on a CPU, then
nanoseconds runnable but waiting), so their sum over a window is the time the thread *wanted*
a core: the whole window for a spinner however busy the machine is, next to nothing for a
thread that sleeps in select(), epoll_wait() or on a condition.

Where schedstat is missing (a kernel built without CONFIG_SCHED_INFO), the measure falls back
to CPU time, and says so in the failure.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

__all__ = ["Busy", "measure_busy"]

_TASKS = "/proc/self/task"


@dataclass(frozen=True)
class Busy:
    """Seconds the process's threads (the measuring thread excepted) wanted a core, in `wall`
    seconds of window."""

    seconds: float
    wall: float
    measure: str  # what `seconds` counts, for the failure message

    @property
    def cores(self) -> float:
        """How many cores' worth of time the threads wanted: ~1.0 for one busy loop."""
        return self.seconds / self.wall if self.wall > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.seconds:.2f} s of {self.measure} in {self.wall:.2f} s"


def _runnable(exclude: int) -> dict[int, int] | None:
    """Per thread of this process but `exclude`: nanoseconds on a CPU plus nanoseconds
    waiting for one; None where the kernel does not keep schedstat."""
    found: dict[int, int] = {}
    try:
        tids = [int(t) for t in os.listdir(_TASKS)]
    except OSError:
        return None
    for tid in tids:
        if tid == exclude:
            continue
        try:
            with open(f"{_TASKS}/{tid}/schedstat") as f:
                on_cpu, waiting, _slices = f.read().split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        except (OSError, ValueError):
            return None
        found[tid] = int(on_cpu) + int(waiting)
    return found


def measure_busy(window: float) -> Busy:
    """Wait `window` seconds and say how busy the other threads of the process were.

    Each thread counts for the part of the window it lived (a thread that ended during it is
    not counted, a thread that started is counted from its start): a spin that matters lives
    through the window.
    """
    me = threading.get_native_id()
    before, cpu0, wall0 = _runnable(me), time.process_time(), time.monotonic()
    threading.Event().wait(window)  # measuring over a window, not awaiting anything
    after, cpu1, wall1 = _runnable(me), time.process_time(), time.monotonic()
    wall = wall1 - wall0
    if before is None or after is None:
        return Busy(cpu1 - cpu0, wall, "CPU time")
    nanos = sum(n - before.get(tid, 0) for tid, n in after.items())
    return Busy(nanos / 1e9, wall, "time running or waiting to run")
