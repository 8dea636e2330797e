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
