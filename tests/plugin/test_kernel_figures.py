"""`conformance._kernel`: what the kernel holds of a loopback connection, from /proc/net/tcp.

S7's partly-full-queue property subtracts these figures from what send() accepted to know
what the server holds itself, so they must be the kernel's own: checked here against
SIOCOUTQ and FIONREAD on a connection whose both ends the test owns (the suite owns only the
peer's end of the server's connections). Where the table cannot be read, the property is an
environment error, never a verdict.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import sys
import termios
from collections.abc import Iterator

import pytest

from conformance import _kernel
from conformance._environment import SuiteEnvironmentError
from conformance._kernel import in_kernel, table_address
from conformance._peers import Deadline

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's table")


def _ioctl_int(sock: socket.socket, request: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(sock, request, b"\0" * 4))[0])


@pytest.fixture
def stalled() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, int]]:
    """A server end that wrote until EAGAIN to a peer end (4 KiB receive buffer) that reads
    nothing; the listener; and the bytes written."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(listener.getsockname())
        server, _ = listener.accept()
        server.setblocking(False)
        written = 0
        try:
            while True:
                written += server.send(b"x" * 65536)
        except BlockingIOError:
            pass
        with server, peer:
            yield server, peer, listener, written


def test_the_figures_are_the_kernels_own(stalled):
    server, peer, listener, written = stalled
    ends = (listener.getsockname(), peer.getsockname())
    figures = in_kernel(*ends)
    assert figures is not None
    # Nobody read, so every written byte is in one of the two -- or in both for a moment:
    # bytes the peer received and has not acknowledged yet (its delayed ACK, 40 ms) are
    # still in the sender's tx_queue. Counted twice, never missed: what the suite derives
    # from these figures for the server's own queue is a lower bound, as S7's check needs.
    assert figures.total >= written
    deadline = Deadline(5.0)
    while figures is not None and figures.total != written and not deadline.expired:
        figures = in_kernel(*ends)  # a read of the table takes milliseconds: no busy spin
    assert figures is not None and figures.total == written, "no ACK within 5 s"
    # What the owner of each socket sees (SIOCOUTQ counts the whole send buffer, sent and
    # unsent, as tx_queue does), now that nothing moves.
    assert figures.send_buffer == _ioctl_int(server, termios.TIOCOUTQ)
    assert figures.receive_buffer == _ioctl_int(peer, termios.FIONREAD)


def test_a_connection_not_in_the_table_is_none(stalled):
    _, peer, listener, _ = stalled
    assert in_kernel(listener.getsockname(), ("127.0.0.1", peer.getsockname()[1] ^ 1)) is None


def test_addresses_as_the_table_writes_them():
    expected = "0100007F:1F90" if sys.byteorder == "little" else "7F000001:1F90"
    assert table_address("127.0.0.1", 8080) == expected


def test_an_unreadable_table_is_an_environment_error(monkeypatch, tmp_path):
    monkeypatch.setattr(_kernel, "TCP_TABLE", str(tmp_path / "no-such-table"))
    with pytest.raises(SuiteEnvironmentError, match="no-such-table"):
        in_kernel(("127.0.0.1", 1), ("127.0.0.1", 2))
