"""A wire-protocol program that misbehaves in one chosen way (tests/plugin/test_exec.py).

    python tests/exec/misbehave.py --mode=MODE

Otherwise it is `python -m impls.wire --impl=select`. Every mode first says on stderr what it
is about to do, so a test can find that line in the failure's stderr tail. With the
environment variable MISBEHAVE_PIDS set, each process it starts appends "pid role" to that
file, so a test can check that none is left behind.

Modes:
    exit-at-start     exit with status 3 before HELLO
    slow-start        never write HELLO (sleeps)
    wrong-version     HELLO says version 2
    crash-mid-session abort() (SIGABRT) on the first RECV
    garbage           print a line of text on stdout on the first RECV
    silent            stop reading commands on the first RECV (never answers again)
    no-exit           ignore EOF on stdin: go on sleeping after STOP
    child             start a child process that outlives the program
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import threading
import time

from conformance import _wire as wire
from impls import wire as program

MODES = ("exit-at-start", "slow-start", "wrong-version", "crash-mid-session", "garbage",
         "silent", "no-exit", "child")


def record(pid: int, role: str) -> None:
    path = os.environ.get("MISBEHAVE_PIDS")
    if path:
        with open(path, "a") as f:
            f.write(f"{pid} {role}\n")


def say(text: str) -> None:
    print(f"misbehave: {text}", file=sys.stderr, flush=True)


class Commands:
    """The main thread's command queue; in mode silent it stops handing out commands."""

    def __init__(self) -> None:
        self.inner: queue.SimpleQueue[wire.Frame | None] = queue.SimpleQueue()
        self.silent = threading.Event()

    def put(self, frame: wire.Frame | None) -> None:
        self.inner.put(frame)

    def get(self) -> wire.Frame | None:
        frame = self.inner.get()
        if self.silent.is_set():
            threading.Event().wait()  # the program stops answering, for good
        return frame


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES, required=True)
    mode = parser.parse_args().mode
    record(os.getpid(), mode)
    sys.stdout = sys.stderr
    say(f"mode {mode}")
    if mode == "exit-at-start":
        say("cannot read my configuration file; exiting with status 3")
        return 3
    if mode == "slow-start":
        say("warming up the caches, this takes a while")
        time.sleep(600)
        return 0
    channel = program.Channel()
    if mode == "wrong-version":
        say("speaking version 2")
        channel.write(wire.Hello(2, "misbehave"))
        sys.stdin.buffer.read()
        return 0
    if mode == "child":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        record(child.pid, "child")
        say(f"started a helper process {child.pid} and will not wait for it")
    commands = Commands()
    first_recv = threading.Event()
    original = program.Events.on_recv

    def on_recv(self: program.Events, session_id: int, data: bytes) -> None:
        if first_recv.is_set() or mode not in ("crash-mid-session", "garbage", "silent"):
            original(self, session_id, data)
            return
        first_recv.set()
        if mode == "crash-mid-session":
            say(f"assertion failed on session {session_id}; aborting")
            os.abort()
        if mode == "garbage":
            say("printing a debug line on stdout")
            os.write(1, f"DEBUG: got {len(data)} bytes\n".encode())
            threading.Event().wait()
        say("no more answers from here on")
        commands.silent.set()
        original(self, session_id, data)

    program.Events.on_recv = on_recv  # type: ignore[method-assign]
    threading.Thread(target=program.read_commands, args=(channel, commands),
                     name="wire-stdin", daemon=True).start()
    channel.write(wire.Hello(wire.VERSION, f"misbehave --mode={mode}"))
    status = program.serve("select", channel, commands)  # type: ignore[arg-type]
    if mode == "no-exit":
        say("stdin is closed, but I keep running")
        time.sleep(600)
    return status


if __name__ == "__main__":
    sys.exit(main())
