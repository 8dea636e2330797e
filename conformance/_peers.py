"""Test peers: real TCP clients on 127.0.0.1, with the controls the properties need.

A `Peer` is one non-blocking client socket with an outbox (bytes to send, in chosen chunk
sizes), an optional pause on reading, half-close (SHUT_WR) and reset (SO_LINGER 0). `drive()`
moves any number of peers forward at once with one selector, so a peer can send megabytes to
an echoing server while reading the echo -- two blocking sockets in one thread would deadlock
as soon as both directions' buffers fill.

Every action is written into the recorder's timeline, so a failure shows what the peer did.
Nothing here sleeps: every wait is a select() bounded by a `Deadline`.
"""

from __future__ import annotations

import errno
import math
import os
import select
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from itertools import cycle

from ._environment import environment_errors
from ._trace import Kind, Recorder

__all__ = ["Deadline", "Peer", "accept_queue", "drive", "echoed"]

# Read this much per recv(): the test peer should not be the bottleneck of a transfer.
READ_SIZE = 256 * 1024
# Most pieces one queue() cuts its data into (see Peer.queue).
MAX_PIECES = 4096
# SO_LINGER on, timeout 0: close() sends RST.
RESET_LINGER = struct.pack("ii", 1, 0)
# drive() re-evaluates its `until` condition at least this often, for conditions that do not
# depend on peer I/O alone (e.g. "and the server released the session").
RECHECK = 0.05


class Deadline:
    """A point in time, and how far away it is."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at


class Peer:
    """One client connection, driven by the test (never by a thread of its own).

    Raises `SuiteEnvironmentError` if the machine cannot give it a socket or a local port,
    TimeoutError if the handshake does not complete within `connect_timeout` (only a full
    listen backlog keeps the kernel from completing it), ConnectionRefusedError if the
    server refuses it.
    """

    def __init__(
        self,
        address: tuple[str, int],
        recorder: Recorder,
        *,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.recorder = recorder
        self.session_id: int | None = None  # set by Scenario.session()
        # Our place in the timeline is taken before connect(), so the server's on_connect
        # for this connection comes after `connect_seq`, which tells it apart from an
        # earlier connection that used the same port (S1 churn reuses ports).
        place = recorder.peer_connecting()
        self.connect_seq = place.seq
        port: int | None = None
        failure = "failed: no socket"
        try:
            with environment_errors("creating a test peer's socket"):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # Buffer sizes must be set before connect() to shape the TCP window.
                if rcvbuf is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                if sndbuf is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
                # No bind() first: connect() picks the port itself and may reuse a port pair
                # in TIME_WAIT, so back-to-back runs do not exhaust the ephemeral range. A
                # non-blocking connect() has picked the port when it returns, before the
                # handshake is awaited, so the port is known even if the server resets it.
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code not in (0, errno.EINPROGRESS):
                    failure = f"failed: {errno.errorcode.get(code, code)}"
                    _raise_connect_error(code, address)
                port = self.port = sock.getsockname()[1]
                recorder.peer_connected(place, port)
                reset = _await_handshake(sock, address, connect_timeout)
            except BaseException:
                sock.close()
                raise
        finally:
            if port is None:
                recorder.peer_connected(place, None, failure)
        self.sock = sock
        self.sent = bytearray()
        self.received = bytearray()
        self.eof: str | None = None  # "EOF" or "reset" once reading ended
        self.reading = True
        self.closed = False
        self._outbox: deque[memoryview] = deque()
        self._shut_after_send = False
        bufs = "".join(
            f" {name}={value}" for name, value in (("rcvbuf", rcvbuf), ("sndbuf", sndbuf)) if value
        )
        if bufs:
            self.record(f"peer buffers:{bufs}")
        if reset:
            self.eof = "reset"
            self.record(f"peer :{self.port} was reset as it connected", Kind.PEER_SAW_RESET)

    def record(self, text: str, kind: Kind = Kind.PEER) -> None:
        """What this peer did or saw, into the timeline (`kind`: one of PEER_KINDS)."""
        self.recorder.record(kind, text, session_id=self.session_id, peer_port=self.port,
                             peer_since=self.connect_seq)

    def __repr__(self) -> str:
        return (
            f"<Peer :{self.port} sent={len(self.sent)} received={len(self.received)} "
            f"outbox={self.outbox_bytes} eof={self.eof}>"
        )

    # ---- what the test asks a peer to do

    def queue(self, data: bytes, chunks: Sequence[int] = ()) -> None:
        """Send `data` in pieces of the given sizes (cycled; whole if empty) as drive() runs.

        At most MAX_PIECES pieces: sizes that would cut more (1-byte writes of megabytes) are
        scaled up, so the test measures the server, not two million send() calls of the peer.
        """
        sizes = [c for c in chunks if c > 0] or [len(data) or 1]
        pieces = len(data) * len(sizes) / sum(sizes)
        if pieces > MAX_PIECES:
            factor = math.ceil(pieces / MAX_PIECES)
            sizes = [c * factor for c in sizes]
        view, pos = memoryview(bytes(data)), 0
        for n in cycle(sizes):
            if pos >= len(view):
                break
            self._outbox.append(view[pos : pos + n])
            pos += n
        shown = sizes[:4] + (["..."] if len(sizes) > 4 else [])
        self.record(f"peer queues {len(data)} bytes" + (f" in chunks {shown}" if chunks else ""))

    @property
    def outbox_bytes(self) -> int:
        return sum(len(v) for v in self._outbox)

    def shut_write(self) -> None:
        """Half-close (SHUT_WR: our FIN) once the outbox is sent."""
        self._shut_after_send = True
        self._flush_shutdown()

    def pause_reading(self) -> None:
        self.reading = False
        self.record("peer stops reading")

    def resume_reading(self) -> None:
        self.reading = True
        self.record("peer reads again")

    def reset(self) -> None:
        """Abort the connection: SO_LINGER 0 then close, so the server gets RST."""
        if not self.closed:
            self.record(f"peer :{self.port} sends RST", Kind.PEER_CLOSE)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_LINGER)
            self.close(quiet=True)

    def abort(self) -> None:
        """reset(), without a note: for the end of a scenario (Scenario._close_peers)."""
        if not self.closed:
            with suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_LINGER)
            self.close(quiet=True)

    def close(self, *, quiet: bool = False) -> None:
        if not self.closed:
            if not quiet:
                self.record(f"peer :{self.port} closed", Kind.PEER_CLOSE)
            self.closed = True
            self.sock.close()

    # ---- I/O steps, called by drive()

    def _flush_shutdown(self) -> None:
        if self._shut_after_send and not self._outbox and not self.closed:
            self._shut_after_send = False
            self.record("peer SHUT_WR (half-close)", Kind.PEER_CLOSE)
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                self.record(f"peer SHUT_WR failed: {exc}")

    def _write(self) -> None:
        while self._outbox:
            chunk = self._outbox[0]
            try:
                n = self.sock.send(chunk)
            except BlockingIOError:
                return
            except OSError as exc:
                self.record(f"peer send failed: {exc!r}; {self.outbox_bytes} bytes unsent",
                          Kind.PEER_SAW_RESET if isinstance(exc, ConnectionResetError)
                          else Kind.PEER)
                self._outbox.clear()
                return
            self.sent += chunk[:n]
            if n < len(chunk):
                self._outbox[0] = chunk[n:]
                return
            self._outbox.popleft()
        self._flush_shutdown()

    def _read(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self.eof = "reset"
            self.record(f"peer read error {type(exc).__name__} after {len(self.received)} bytes",
                      Kind.PEER_SAW_RESET)
            return
        if data:
            self.received += data
        else:
            self.eof = "EOF"
            self.record(f"peer read EOF after {len(self.received)} bytes")

    def _interest(self) -> int:
        if self.closed:
            return 0
        events = 0
        if self.reading and self.eof is None:
            events |= selectors.EVENT_READ
        if self._outbox:
            events |= selectors.EVENT_WRITE
        return events


def _raise_connect_error(code: int, address: tuple[str, int]) -> None:
    """connect() failed at once with `code`: the machine's error or the server's."""
    with environment_errors(f"connect() of a test peer to {address}"):
        # OSError(code, ...) is the subclass for the code: ConnectionRefusedError, ...
        raise OSError(code, f"{os.strerror(code)}: connect() to {address}")


def _await_handshake(sock: socket.socket, address: tuple[str, int], timeout: float) -> bool:
    """Wait for the non-blocking connect() of `sock`; True if the server reset it as it
    connected. poll(), not a selector: no descriptor of its own, no limit on fd numbers."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    if not poller.poll(timeout * 1000):
        raise TimeoutError(errno.ETIMEDOUT,
                           f"connect() to {address} did not complete within {timeout:g} s")
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code == 0:
        return False
    if code == errno.ECONNRESET:
        # The server accepted and reset the connection before we looked at the handshake's
        # outcome: connected, then reset, as a client sees it.
        return True
    _raise_connect_error(code, address)
    return False


def accept_queue(address: tuple[str, int]) -> int | None:
    """How many connections wait in the accept queue of the IPv4 listener on `address`
    (/proc/net/tcp shows it for a listening socket); None where that cannot be read."""
    host, port = address
    local = f"{socket.htonl(struct.unpack('!I', socket.inet_aton(host))[0]):08X}:{port:04X}"
    try:
        with open("/proc/net/tcp") as table:
            for row in table:
                fields = row.split()
                if fields[1:2] == [local] and fields[3] == "0A":  # TCP_LISTEN
                    return int(fields[4].split(":")[1], 16)
    except (OSError, IndexError, ValueError):
        return None
    return None


def echoed(peers: Iterable[Peer]) -> bool:
    """Every peer sent all it queued and got exactly that back (against an echo server)."""
    return all(p.outbox_bytes == 0 and p.received == p.sent for p in peers)


def drive(
    peers: Iterable[Peer], until: Callable[[], bool], deadline: Deadline
) -> bool:
    """Do the peers' I/O until `until()` holds or the deadline passes; return `until()`.

    With nothing left to do for any peer, returns at once whatever `until()` says.
    """
    peers = list(peers)
    with environment_errors("creating the test peers' selector"):
        sel = selectors.DefaultSelector()
    with sel:
        while not until():
            if deadline.expired:
                return until()
            registered = []
            for p in peers:
                events = p._interest()
                if events:
                    sel.register(p.sock, events, p)
                    registered.append(p)
            if not registered:
                return until()
            try:
                ready = sel.select(min(RECHECK, deadline.remaining()))
            finally:
                for p in registered:
                    sel.unregister(p.sock)
            for key, mask in ready:
                peer: Peer = key.data
                if mask & selectors.EVENT_WRITE:
                    peer._write()
                if mask & selectors.EVENT_READ:
                    peer._read()
    return True
