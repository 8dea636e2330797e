"""`--impl=exec:COMMAND`: a program in any language, run as a `SessionServer` over the wire
protocol (docs/wire-protocol.md; frames in `_wire.py`).

One process per server: `start()` launches the program in a new process group, reads its
HELLO, sends START and waits for STARTED. Then three threads of the suite serve it:

- the reader only reads frames from the program's stdout. A result (STARTED, RESULT, FAILED)
  wakes the caller waiting for its tag; an event (CONNECT, RECV, RELEASE) goes to a queue. It
  never calls the application, so a callback that calls send() cannot deadlock against a
  program blocked writing its stdout.
- the dispatcher takes events from the queue in order and calls the application's callbacks
  (so one session's callbacks never overlap, S2). A callback that raises sends
  CALLBACK_FAILED: the program ends that session (S12).
- the stderr reader keeps the last `STDERR_TAIL` bytes of the program's stderr for messages.

Every wait is bounded, a little below the harness's own deadline for the call (so that this
message, with the program's side of the story, is the one reported). A program that exits,
crashes, writes garbage, speaks another version or stops answering makes the waiting call
raise `ProgramFailed`, whose text names what was awaited, the exit status and the stderr
tail; the same text goes into the scenario's timeline as a note, for failures of waits that
do not call the program. `stop()` ends with EOF on stdin and kills the process group, so the
program and its children never outlive the test.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import queue
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import _wire as wire
from .api import ServerConfig, ServerFactory, SessionHandler

__all__ = ["ExecServer", "ProgramFailed", "exec_server", "parse_exec"]

EXEC_PREFIX = "exec:"

# Bytes of the program's stderr kept for failure messages.
STDERR_TAIL = 4096

# Each wait of the adapter is this fraction of the harness's deadline for the same call
# (Timeouts at the run's --conformance-timeout-scale), so the adapter's message, which has the
# program's stderr and exit status, is the one reported.
_SHARE = 0.8

# Seconds the program gets to exit after EOF on its stdin (at scale 1).
EXIT_AFTER_EOF = 2.0

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    """No program outlives the suite's process, whatever path the run took."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1.0)
    with _live_lock:
        _live.discard(proc)


class ProgramFailed(Exception):
    """The program broke the protocol, exited, or did not answer in time. The message names
    what was awaited, what happened, the exit status and the program's stderr tail."""


@dataclass(frozen=True)
class Deadlines:
    """The adapter's waits, in seconds: `_SHARE` of the harness's deadline for each call."""

    scale: float = 1.0

    @property
    def start(self) -> float:
        return _SHARE * 5.0 * self.scale

    def stop(self, config: ServerConfig) -> float:
        return _SHARE * 5.0 * self.scale + config.linger

    def command(self, nbytes: int = 0) -> float:
        """SEND and DISCONNECT: answered at once (S6, S13); writing the frame's bytes into the
        pipe is allowed a megabyte a second on top (at scale 1), a thousandfold margin."""
        return _SHARE * 2.0 * self.scale + self.scale * nbytes / (1 << 20)

    @property
    def exit(self) -> float:
        return EXIT_AFTER_EOF * self.scale


_deadlines = Deadlines()


def set_timeout_scale(scale: float) -> None:
    """The run's --conformance-timeout-scale (the plugin calls this)."""
    global _deadlines
    _deadlines = Deadlines(scale)


@dataclass
class _Pending:
    """A command waiting for its result (STARTED, RESULT or FAILED with its tag)."""

    what: str
    done: threading.Event
    frame: wire.Frame | None = None


_STOP_DISPATCH = object()


class ExecServer:
    """A `SessionServer` that runs `argv` and speaks the wire protocol with it."""

    def __init__(self, argv: Sequence[str], config: ServerConfig,
                 env: Mapping[str, str] | None = None) -> None:
        if not argv:
            raise ValueError("exec: needs a command to run")
        self.argv = list(argv)
        self.config = config
        self.env = dict(env) if env is not None else None
        self.program_name = ""  # from HELLO
        self._proc: subprocess.Popen[bytes] | None = None
        self._handler: SessionHandler | None = None
        self._deadlines = _deadlines
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the fields below
        self._tags = 0
        self._pending: dict[int, _Pending] = {}
        self._broken: str | None = None  # why the program can no longer be trusted
        self._started = False
        self._stopped = False
        self._live_ids: set[int] = set()
        self._failed_ids: set[int] = set()  # a callback of theirs raised; RELEASE still owed
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._stderr: deque[bytes] = deque()
        self._stderr_size = 0
        self._stderr_done = threading.Event()
        self._hello = threading.Event()
        self._eof = threading.Event()  # the program's stdout ended (or broke)
        self._at_hello: tuple[int, int] | None = None  # (sockets, threads) when HELLO came
        self._after_stop: tuple[list[str], int] | None = None

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"<ExecServer {shlex.join(self.argv)!r} pid={pid}>"

    # ---- SessionServer

    def start(self, handler: SessionHandler, host: str = "127.0.0.1",
              port: int = 0) -> tuple[str, int]:
        if self._proc is not None:
            raise RuntimeError("start() is called once per server")
        self._handler = handler
        limit = self._deadlines.start
        began = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=self.env, start_new_session=True)
        except OSError as exc:
            raise ProgramFailed(f"cannot run {shlex.join(self.argv)!r}: {exc}") from exc
        with _live_lock:
            _live.add(self._proc)
        assert self._proc.stdin is not None
        os.set_blocking(self._proc.stdin.fileno(), False)  # writes are bounded (`_write`)
        self._spawn(self._read_stderr, "exec-stderr")
        self._spawn(self._read_frames, "exec-reader")
        self._dispatcher = self._spawn(self._dispatch, "exec-dispatcher")
        try:
            if not self._hello.wait(limit):
                self._fail_now(f"the program's HELLO frame (within {limit:g} s of starting it)",
                               f"no HELLO came within {limit:g} s")
            self._check_broken("the program's HELLO frame")
            left = max(limit - (time.monotonic() - began), 0.0)
            frame = self._command(
                lambda tag: wire.Start(tag, wire.VERSION, self.config.send_queue_limit,
                                       self.config.workers, round(self.config.linger * 1000),
                                       port, host),
                "STARTED for START (the program binds, listens, then answers)", left)
        except BaseException:
            self._shutdown()
            raise
        if isinstance(frame, wire.Failed):
            message = self._describe("STARTED for START", f"the program answered FAILED: "
                                     f"{frame.message}")
            self._shutdown()
            raise ProgramFailed(message)
        if not isinstance(frame, wire.Started):
            message = self._describe("STARTED for START",
                                     f"the program answered {type(frame).__name__}")
            self._shutdown()
            raise ProgramFailed(message)
        self._started = True
        return host, frame.port

    def send(self, session_id: int, data: bytes) -> bool:
        if self._closed_for_calls():
            return False
        frame = self._command(lambda tag: wire.Send(tag, session_id, bytes(data)),
                              f"RESULT for SEND({session_id}, {len(data)} bytes)",
                              self._deadlines.command(len(data)))
        return self._boolean(frame, f"SEND({session_id})")

    def disconnect(self, session_id: int) -> bool:
        if self._closed_for_calls():
            return False
        frame = self._command(lambda tag: wire.Disconnect(tag, session_id),
                              f"RESULT for DISCONNECT({session_id})", self._deadlines.command())
        return self._boolean(frame, f"DISCONNECT({session_id})")

    def stop(self) -> None:
        if threading.current_thread() is self._dispatcher:
            raise RuntimeError("stop() from inside a callback: the owner calls stop()")
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        clean = False  # the program answered STOP: its exit on EOF is checked too
        try:
            if self._proc is None or not self._started:
                return
            self._check_broken("RESULT for STOP")
            limit = self._deadlines.stop(self.config)
            began = time.monotonic()
            self._command(lambda tag: wire.Stop(tag), "RESULT for STOP (the program releases "
                          "every session, then answers)", limit)
            # The RELEASEs came before the RESULT: the callbacks run before stop() returns.
            drained = threading.Event()
            self._events.put(drained)
            if not drained.wait(max(limit - (time.monotonic() - began), 0.1)):
                raise ProgramFailed("the suite's own callbacks for the program's events did "
                                    "not finish before stop()'s deadline")
            self._after_stop = self._measure_after_stop()
            clean = True
        finally:
            self._shutdown(check_exit=clean)

    # ---- for the suite: diagnostics and S11's leak check

    def diagnostics(self) -> str:
        """The program's exit status (or that it runs) and the tail of its stderr."""
        proc = self._proc
        if proc is None:
            return f"the program {shlex.join(self.argv)!r} was not started"
        code = proc.poll()
        status = "is still running" if code is None else _exit_status(code)
        tail = self.stderr_tail().rstrip()
        shown = "\n".join("    " + line for line in tail.splitlines()) if tail else "    (empty)"
        return (f"the program {shlex.join(self.argv)!r} (pid {proc.pid}) {status}; "
                f"its stderr ended with:\n{shown}")

    def stderr_tail(self) -> str:
        with self._lock:
            return b"".join(self._stderr).decode(errors="replace")

    def leftovers_after_stop(self) -> str | None:
        """S11 measured on the program: after answering STOP (and before EOF on its stdin) it
        holds no more sockets and threads than when it said HELLO. None if so (or if it was
        not measured); else what is left."""
        if self._at_hello is None or self._after_stop is None:
            return None
        sockets_before, threads_before = self._at_hello
        sockets, threads = self._after_stop
        found = []
        if len(sockets) > sockets_before:
            found.append(f"{len(sockets)} open sockets ({', '.join(sockets[:8])}), "
                         f"{sockets_before} when it said HELLO")
        if threads > threads_before:
            found.append(f"{threads} threads, {threads_before} when it said HELLO")
        return "; ".join(found) or None

    # ---- the channel

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _command(self, make: Callable[[int], wire.Frame], what: str,
                 timeout: float) -> wire.Frame:
        """Write the command `make(tag)` and wait for its result; raise ProgramFailed naming
        `what` if none comes within `timeout` or the program fails first."""
        deadline = time.monotonic() + timeout
        pending = _Pending(what, threading.Event())
        with self._lock:
            self._tags = (self._tags + 1) % (1 << 32)
            tag = self._tags
            self._pending[tag] = pending
        try:
            self._check_broken(what)
            self._write(wire.encode(make(tag)), what, deadline)
            if not pending.done.wait(max(deadline - time.monotonic(), 0.0)):
                self._fail_now(f"{what} (within {timeout:g} s)",
                               f"no answer came within {timeout:g} s")
        finally:
            with self._lock:
                self._pending.pop(tag, None)
        if pending.frame is None:
            self._check_broken(what)
            raise AssertionError("woken without a frame")  # pragma: no cover
        return pending.frame

    def _boolean(self, frame: wire.Frame, command: str) -> bool:
        if isinstance(frame, wire.Result):
            return frame.value == 1
        self._fail_now(f"RESULT for {command}", f"the program answered {frame}")
        raise AssertionError  # pragma: no cover

    def _write(self, data: bytes, what: str, deadline: float) -> None:
        """All of `data` into the program's stdin, whole (one frame is never interleaved with
        another), within `deadline`: a program that stops reading stdin fills the pipe."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        if not self._write_lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            self._fail_now(what, "the program did not read its stdin: an earlier command "
                           "was still being written into the full pipe")
        try:
            fd = proc.stdin.fileno()
            view = memoryview(data)
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fail_now(what, f"the program did not read its stdin: "
                                   f"{len(view)} bytes of the command were still unwritten")
                _, ready, _ = select.select([], [fd], [], left)
                if not ready:
                    continue
                try:
                    view = view[os.write(fd, view[: 1 << 16]):]
                except BlockingIOError:
                    continue
                except OSError as exc:  # EPIPE: the program closed its stdin or exited
                    self._fail_now(what, f"writing the command failed ({exc})")
        finally:
            self._write_lock.release()

    def _send_quietly(self, frame: wire.Frame) -> None:
        """A command that has no result (CALLBACK_FAILED, RETURNED), from the dispatcher: a
        failure breaks the channel (noted in the timeline), it is not raised."""
        what = type(frame).__name__.upper()
        try:
            self._check_broken(what)
            self._write(wire.encode(frame), what, time.monotonic() + self._deadlines.command())
        except ProgramFailed:
            self._break(f"writing {what}({frame}) into the program's stdin did not finish "
                        f"within {self._deadlines.command():g} s")

    def _read_frames(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        reader = wire.FrameReader(proc.stdout.read)
        try:
            while True:
                try:
                    frame = reader.next()
                except wire.WireError as exc:
                    self._break(f"the program wrote bytes that are not a frame, after "
                                f"{reader.frames} good frames: {exc}")
                    return
                if frame is None:
                    self._eof.set()
                    self._break(f"the program closed its stdout (after {reader.frames} "
                                "frames)")
                    return
                if reader.frames == 1:
                    if not self._on_hello(frame):
                        return
                    continue
                if not self._route(frame):
                    return
        except (OSError, ValueError) as exc:
            self._break(f"reading the program's stdout failed: {exc}")
        finally:
            self._hello.set()
            self._events.put(_STOP_DISPATCH)
            self._eof.set()

    def _on_hello(self, frame: wire.Frame) -> bool:
        if not isinstance(frame, wire.Hello):
            self._break(f"the program's first frame was {frame}, not HELLO")
            return False
        self.program_name = frame.name
        if frame.version != wire.VERSION:
            self._break(f"the program speaks wire protocol version {frame.version}; this "
                        f"suite speaks {wire.VERSION} -- update one of them (START was not sent)")
            return False
        self._at_hello = self._measure_counts()
        self._hello.set()
        return True

    def _route(self, frame: wire.Frame) -> bool:
        if isinstance(frame, wire.Started | wire.Result | wire.Failed):
            with self._lock:
                pending = self._pending.get(frame.tag)
            if pending is None:
                self._break(f"the program answered tag {frame.tag}, which no command that is "
                            f"waiting has ({frame})")
                return False
            pending.frame = frame
            pending.done.set()
            return True
        if isinstance(frame, wire.Connect | wire.Recv | wire.Release):
            self._events.put(frame)
            return True
        self._break(f"the program wrote {type(frame).__name__}, a frame only the suite sends")
        return False

    def _dispatch(self) -> None:
        """Run the application's callbacks, in the order the events came."""
        handler = self._handler
        assert handler is not None
        while True:
            item = self._events.get()
            if item is _STOP_DISPATCH:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            assert isinstance(item, wire.Connect | wire.Recv | wire.Release)
            sid = item.session_id
            with self._lock:
                dropped = isinstance(item, wire.Recv) and sid in self._failed_ids
            if dropped:
                # Written before our CALLBACK_FAILED reached the program: that session ended
                # when its callback raised, so no callback but on_release is owed to it.
                self._send_quietly(wire.Returned(sid))
                continue
            with self._lock:
                if isinstance(item, wire.Connect):
                    self._live_ids.add(sid)
                elif isinstance(item, wire.Release):
                    self._live_ids.discard(sid)
                    self._failed_ids.discard(sid)
            try:
                if isinstance(item, wire.Connect):
                    handler.on_connect(sid, (item.peer_host, item.peer_port))
                elif isinstance(item, wire.Recv):
                    handler.on_recv(sid, item.data)
                else:
                    handler.on_release(sid)
            except Exception:
                if not isinstance(item, wire.Release):
                    with self._lock:
                        self._failed_ids.add(sid)
                    self._send_quietly(wire.CallbackFailed(sid))
            else:
                if not isinstance(item, wire.Release):
                    # The program may be waiting for it: a FIN after this data closes the
                    # session only once a reply sent from this callback was accepted (S5).
                    self._send_quietly(wire.Returned(sid))

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            fd = proc.stderr.fileno()
            while chunk := os.read(fd, 4096):
                with self._lock:
                    self._stderr.append(chunk)
                    self._stderr_size += len(chunk)
                    while self._stderr_size - len(self._stderr[0]) >= STDERR_TAIL:
                        self._stderr_size -= len(self._stderr.popleft())
        except (OSError, ValueError):
            pass
        finally:
            self._stderr_done.set()

    # ---- failing

    def _closed_for_calls(self) -> bool:
        """After stop() the program is gone: every id is released (S11)."""
        with self._lock:
            return self._stopped or not self._started

    def _break(self, why: str) -> None:
        """The program can no longer be trusted: wake every waiting call, and note it in the
        scenario's timeline (a failure of a wait that does not call the program shows it)."""
        with self._lock:
            if self._broken is not None:
                return
            self._broken = why
            pending = list(self._pending.values())
            live = sorted(self._live_ids)
            stopped = self._stopped
        for p in pending:
            p.done.set()
        note = getattr(self._handler, "note", None)
        if callable(note) and not stopped:
            text = f"the program failed: {self._describe_broken(why)}"
            for sid in live:
                note(text, session_id=sid)
            note(text)

    def _check_broken(self, what: str) -> None:
        with self._lock:
            why = self._broken
        if why is not None:
            raise ProgramFailed(self._describe(what, why))

    def _fail_now(self, what: str, actual: str) -> None:
        """Raise ProgramFailed: the wait for `what` failed with `actual` (or an earlier
        failure). The channel is broken from now on: a late answer could not be told from a
        wrong one, so no more calls go to the program."""
        self._break(actual)
        self._check_broken(what)

    def _describe(self, what: str, actual: str) -> str:
        self._settle()
        return f"awaited {what}: {actual}; {self.diagnostics()}"

    def _describe_broken(self, why: str) -> str:
        self._settle()
        return f"{why}; {self.diagnostics()}"

    def _settle(self) -> None:
        """A program that closed its stdout is most likely exiting: give it a moment to, so
        the message has its exit status and the last of its stderr (bounded)."""
        proc = self._proc
        if proc is None or not self._eof.is_set():
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.5 * self._deadlines.scale)
        if proc.poll() is not None:
            self._stderr_done.wait(0.5 * self._deadlines.scale)

    # ---- S11 from /proc

    def _measure_after_stop(self) -> tuple[list[str], int]:
        """`_measure`, repeated for a moment while it finds more than at HELLO: a thread that
        was joined can still be listed in /proc/<pid>/task until the kernel has finished
        its exit (Python's join() returns a little before that), and nothing signals that
        moment to another process, so the count is re-read with a growing pause, 1 s at
        most (at scale 1)."""
        deadline = time.monotonic() + self._deadlines.scale
        pause, wait = 0.001, threading.Event()
        while True:
            found = self._measure()
            before = self._at_hello
            if before is None or (len(found[0]) <= before[0] and found[1] <= before[1]) \
                    or time.monotonic() >= deadline:
                return found
            wait.wait(pause)  # re-reading /proc: there is no event to wait for
            pause = min(pause * 2, 0.05)

    def _measure_counts(self) -> tuple[int, int]:
        sockets, threads = self._measure()
        return len(sockets), threads

    def _measure(self) -> tuple[list[str], int]:
        """The program's open sockets (fd -> target) and its thread count, from /proc."""
        proc = self._proc
        assert proc is not None
        sockets = []
        try:
            for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                    if fd not in ("0", "1", "2") and target.startswith("socket:"):
                        sockets.append(f"fd {fd} {target}")
            threads = len(os.listdir(f"/proc/{proc.pid}/task"))
        except OSError:  # no /proc, or the program is gone: nothing to measure
            return [], 0
        return sorted(sockets), threads

    # ---- the end

    def _shutdown(self, check_exit: bool = False) -> None:
        """EOF on stdin, then the process group is killed. With `check_exit` (the program
        answered STOP), it is given time to exit on that EOF, and a program that does not, or
        leaves processes of its group behind, fails S11 here; otherwise (a failure) the group
        is killed at once."""
        proc = self._proc
        if proc is None:
            return
        with self._lock:
            self._stopped = True
        problem = ""
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(self._deadlines.exit if check_exit else 0)
        except subprocess.TimeoutExpired:
            problem = (f"the program did not exit within {self._deadlines.exit:g} s of EOF on "
                       f"its stdin")
        else:
            if _group_alive(proc.pid):
                problem = ("the program exited but left processes of its group running "
                           f"(process group {proc.pid}); they were killed")
        if problem and check_exit:
            message = self._describe("the program to exit once its stdin closed", problem)
        _kill_group(proc)
        for thread in self._threads:  # they end on the pipes' EOF, now that it is killed
            thread.join(self._deadlines.exit if check_exit else 0.2 * self._deadlines.scale)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if problem and check_exit:
            raise ProgramFailed(message)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def exec_server(argv: Sequence[str] | str, env: Mapping[str, str] | None = None,
                extra_env: Mapping[str, str] | None = None) -> ServerFactory:
    """A server factory that runs a program speaking the wire protocol (docs/wire-protocol.md).

    `argv`: the command, as a list or a shell-like string (split with shlex). `env`: the whole
    environment (default: the suite's); `extra_env`: variables added to it. Bind it to a
    module attribute and name that like any factory -- `--impl=my_wire:make_server`, an
    entry point, or an `impl` fixture returning "my_wire:make_server":

        # my_wire.py
        make_server = exec_server(["./my-server", "--verbose"], extra_env={"LOG": "debug"})
    """
    args = shlex.split(argv) if isinstance(argv, str) else list(argv)
    if not args:
        raise ValueError("exec_server() needs a command")
    environment: dict[str, str] | None = None
    if env is not None or extra_env:
        environment = {**(os.environ if env is None else env), **(extra_env or {})}

    def factory(config: ServerConfig) -> ExecServer:
        return ExecServer(args, config, environment)

    factory.__qualname__ = f"exec_server({shlex.join(args)!r})"
    return factory


def parse_exec(spec: str) -> ServerFactory | None:
    """The factory for an `--impl=exec:COMMAND` value, None for any other value. A command
    that cannot be run is a usage error (`ImplError`), like a module that cannot be imported."""
    from ._loading import ImplError

    if not spec.startswith(EXEC_PREFIX):
        return None
    try:
        args = shlex.split(spec[len(EXEC_PREFIX):])
    except ValueError as exc:
        raise ImplError(f"--impl={spec}: the command cannot be split into words ({exc}); "
                        "quote it as a shell would") from None
    if not args:
        raise ImplError(f"--impl={spec}: no command after '{EXEC_PREFIX}'. Name a program "
                        "that speaks the wire protocol, e.g. --impl='exec:./my-server "
                        "--flag' (docs/wire-protocol.md).")
    program = args[0]
    if shutil.which(program) is None:
        where = "no such file, or not executable" if os.sep in program else "not on PATH"
        raise ImplError(f"--impl={spec}: cannot run {program!r} ({where}). Give the path of a "
                        "program that speaks the wire protocol (docs/wire-protocol.md), "
                        "e.g. --impl='exec:./build/my-server'.")
    return exec_server(args)
