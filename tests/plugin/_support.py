"""What the plugin tests write into a pytester directory, and how they read the results.

The implementations below are tiny user modules (`--impl=module:factory`); most of them wrap
the select reference implementation and break one thing.
"""

from __future__ import annotations

import pytest

from conformance._clauses import CLAUSES

# ---- user implementations

#: A correct implementation, offered the way a user would: a re-exported factory.
MYIMPL = """
from impls.select_ import make_server
"""

#: The factory returns an object with start() and send() only.
INCOMPLETE = """
class Half:
    def __init__(self, config):
        self.config = config

    def start(self, handler, host="127.0.0.1", port=0):
        return (host, port)

    def send(self, session_id, data):
        return False


def make_server(config):
    return Half(config)
"""

#: start() raises.
START_RAISES = """
from impls.select_ import SelectServer


class NoSockets(SelectServer):
    def start(self, handler, host="127.0.0.1", port=0):
        raise OSError("no sockets today")


make_server = NoSockets
"""

#: start() never returns.
START_HANGS = """
import threading

from impls.select_ import SelectServer


class Hangs(SelectServer):
    def start(self, handler, host="127.0.0.1", port=0):
        threading.Event().wait()


make_server = Hangs
"""

#: stop() never returns, and a non-daemon thread of the server waits for it: without the
#: plugin's exit at the end, the interpreter would wait for that thread forever.
STOP_HANGS = """
import threading

from impls.select_ import SelectServer


class StopHangs(SelectServer):
    def start(self, handler, host="127.0.0.1", port=0):
        address = super().start(handler, host, port)
        self._stopped = threading.Event()
        threading.Thread(target=self._stopped.wait, name="keeper", daemon=False).start()
        return address

    def stop(self):
        threading.Event().wait()
        self._stopped.set()


make_server = StopHangs
"""

#: The module raises while it is imported.
IMPORT_RAISES = """
raise RuntimeError("this module is broken")
"""

#: start() forgets to return the bound address.
START_RETURNS_NONE = """
from impls.select_ import SelectServer


class NoAddress(SelectServer):
    def start(self, handler, host="127.0.0.1", port=0):
        super().start(handler, host, port)


make_server = NoAddress
"""

#: send() says True and sends nothing: breaks S4.
LOSSY = """
from impls.select_ import SelectServer


class Lossy:
    def __init__(self, config):
        self._inner = SelectServer(config)

    def start(self, handler, host="127.0.0.1", port=0):
        return self._inner.start(handler, host, port)

    def send(self, session_id, data):
        return True

    def disconnect(self, session_id):
        return self._inner.disconnect(session_id)

    def stop(self):
        self._inner.stop()


make_server = Lossy
"""

#: A correct server whose callbacks run on a bounded thread pool created once per process, as
#: frameworks do, and filled lazily: each server started adds one worker, up to four, and the
#: workers are kept for reuse. So the thread count grows over the first start/stop cycles of
#: the process, then stays. Each session's callbacks still run one at a time, in order (S2),
#: and stop() returns once every queued callback, on_release included, has run (S11).
LAZY_POOL = """
import queue
import threading
from collections import deque

from impls.select_ import SelectServer


class SharedPool:
    def __init__(self, most):
        self.most = most
        self.tasks = queue.SimpleQueue()
        self.workers = []
        self.lock = threading.Lock()

    def grow(self):
        with self.lock:
            if len(self.workers) < self.most:
                worker = threading.Thread(target=self._work, daemon=True,
                                          name=f"app-pool-{len(self.workers)}")
                worker.start()
                self.workers.append(worker)

    def submit(self, fn, *args):
        self.tasks.put((fn, args))

    def _work(self):
        while True:
            fn, args = self.tasks.get()
            fn(*args)


POOL = SharedPool(most=4)


class PooledHandler:
    def __init__(self, handler):
        self.handler = handler
        self.lock = threading.Condition()
        self.queues = {}  # session id -> its callbacks not yet run, in order
        self.outstanding = 0

    def on_connect(self, sid, peer):
        self._submit(sid, self.handler.on_connect, sid, peer)

    def on_recv(self, sid, data):
        self._submit(sid, self.handler.on_recv, sid, data)

    def on_release(self, sid):
        self._submit(sid, self.handler.on_release, sid)

    def _submit(self, sid, fn, *args):
        with self.lock:
            pending = self.queues.setdefault(sid, deque())
            pending.append((fn, args))
            self.outstanding += 1
            if len(pending) == 1:  # nobody is running this session's callbacks: start one
                POOL.submit(self._drain, sid)

    def _drain(self, sid):
        while True:
            with self.lock:
                fn, args = self.queues[sid][0]
            try:
                fn(*args)
            except Exception:
                pass
            with self.lock:
                pending = self.queues[sid]
                pending.popleft()
                self.outstanding -= 1
                if not pending:
                    del self.queues[sid]
                    self.lock.notify_all()
                    return

    def idle(self):
        with self.lock:
            self.lock.wait_for(lambda: self.outstanding == 0)


class PooledCallbacks:
    def __init__(self, config):
        self._inner = SelectServer(config)
        self._pooled = None

    def start(self, handler, host="127.0.0.1", port=0):
        POOL.grow()
        self._pooled = PooledHandler(handler)
        return self._inner.start(self._pooled, host, port)

    def send(self, session_id, data):
        return self._inner.send(session_id, data)

    def disconnect(self, session_id):
        return self._inner.disconnect(session_id)

    def stop(self):
        self._inner.stop()
        if self._pooled is not None:
            self._pooled.idle()  # every on_release queued by stop() has run


make_server = PooledCallbacks
"""

#: A correct server that reads at most 512 bytes per recv(): the number of on_recv calls is
#: the server's choice (S3), so a megabyte makes two thousand of them.
READS_512 = """
from impls.select_ import SelectServer


class Reads512(SelectServer):
    def _on_readable(self, s, buf):
        super()._on_readable(s, memoryview(buf)[:512])


make_server = Reads512
"""

# ---- tests a user would write

#: One short S5 scenario: the peer sends and half-closes; EOF, then the release.
S5_TEST = """
import pytest


@pytest.mark.clause("S5")
def test_fin_releases(conformance):
    with conformance.scenario() as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        peer.queue(b"hello")
        peer.shut_write()
        sc.drive([peer], until=lambda: peer.eof is not None, clause="S5",
                 expected="the peer to read EOF")
        sc.released(sid, clause="S5")
        sc.settle(peer, inbound_complete=True, outbound_complete=True)
        assert sc.rec.received(sid) == b"hello"
"""

#: One short S4 scenario: 100 accepted bytes must reach the peer (half a second allowed).
S4_TEST = """
import pytest


@pytest.mark.clause("S4")
def test_accepted_bytes_arrive(conformance):
    with conformance.scenario() as sc:
        peer = sc.connect()
        sid = sc.session(peer)
        assert sc.rec.send(sid, b"x" * 100)
        sc.drive([peer], until=lambda: len(peer.received) >= 100, clause="S4",
                 expected="the peer to receive the 100 accepted bytes", timeout=0.5,
                 session_ids=[sid])
"""


# ---- reading results


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in this process (fast): for runs that leave no thread or handler behind."""
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def usage_error(result: pytest.RunResult) -> str:
    """Assert `result` is pytest's usage error; return its output, whitespace collapsed."""
    output = "\n".join([*result.errlines, *result.outlines])
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    return " ".join(output.split())


def summary_row(result: pytest.RunResult, impl: str) -> dict[str, str]:
    """The cells of `impl`'s row in the "implementation x clause" table, by clause id."""
    lines = result.outlines
    title = next(
        (i for i, line in enumerate(lines) if "conformance: implementation x clause" in line),
        None,
    )
    assert title is not None, "no conformance summary in:\n" + "\n".join(lines)
    rest = [line for line in lines[title + 1 :] if line.strip()]
    header = rest[0].split()
    assert header == list(CLAUSES), rest[0]
    for line in rest[1:]:
        parts = line.split()
        if parts and parts[0] == impl:
            assert len(parts) == 1 + len(header), line
            return dict(zip(header, parts[1:], strict=True))
    raise AssertionError(f"no row for {impl!r} in:\n" + "\n".join(lines[title:]))
