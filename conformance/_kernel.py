"""What the kernel holds of one loopback TCP connection, read from outside the server (Linux).

S7 limits the bytes an implementation holds *itself*: accepted by send() and not yet handed to
the kernel. The suite sees only the two ends of that: what send() accepted and what the peer
read. The rest sits in three places -- the implementation's queue, the server socket's send
buffer, the peer socket's receive buffer -- and the suite must subtract the kernel's two to
know the first. It owns the peer's socket (FIONREAD would do) but not the server's: SIOCOUTQ
only answers for a socket you hold. Linux's TCP table, /proc/net/tcp, answers for every
socket of this network namespace and any process may read it:

    tx_queue  write_seq - snd_una: bytes in the send buffer, sent and not yet acknowledged
              or not sent at all (a closed window keeps them there)
    rx_queue  rcv_nxt - copied_seq: bytes received and not yet read by the application

Each row names its socket by local and remote address: an IPv4 address as 8 hex digits of the
32-bit word in host byte order (little-endian here: 127.0.0.1 is 0100007F), a port as 4 hex
digits. The table is read row by row, not atomically: a byte moving from one end to the other
during the read can be counted twice or missed, so a figure is only trusted once two readings
some time apart agree (the caller's job: `conformance.suite.test_s06_s07_backpressure`).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from ._environment import SuiteEnvironmentError

__all__ = ["InKernel", "in_kernel"]

TCP_TABLE = "/proc/net/tcp"


@dataclass(frozen=True)
class InKernel:
    """Bytes of one server-to-peer direction that the kernel holds, at one reading."""

    send_buffer: int  # the server socket's tx_queue
    receive_buffer: int  # the peer socket's rx_queue

    @property
    def total(self) -> int:
        return self.send_buffer + self.receive_buffer

    def __str__(self) -> str:
        return (f"{self.send_buffer} in the server's send buffer, {self.receive_buffer} in the "
                "peer's receive buffer")


def table_address(host: str, port: int) -> str:
    """`host:port` as /proc/net/tcp writes it: 127.0.0.1:8080 -> 0100007F:1F90."""
    word = struct.unpack("=I", socket.inet_aton(host))[0]  # the address's bytes, read natively
    return f"{word:08X}:{port:04X}"


def in_kernel(server: tuple[str, int], peer: tuple[str, int]) -> InKernel | None:
    """What the kernel holds of the connection between `server` and `peer` (the server's
    side of it, the peer's side of it); None if either socket is gone from the table.

    Raises `SuiteEnvironmentError` where the table cannot be read (not Linux, no /proc).
    """
    ours, theirs = table_address(*server), table_address(*peer)
    tx: int | None = None
    rx: int | None = None
    try:
        with open(TCP_TABLE) as table:
            next(table, None)  # the header
            for row in table:
                fields = row.split()
                # sl local_address rem_address st tx_queue:rx_queue ...
                if fields[1] == ours and fields[2] == theirs:
                    tx = int(fields[4].split(":")[0], 16)
                elif fields[1] == theirs and fields[2] == ours:
                    rx = int(fields[4].split(":")[1], 16)
    except (OSError, IndexError, ValueError) as exc:
        raise SuiteEnvironmentError(
            f"reading the kernel's TCP table ({TCP_TABLE})", exc,
            "S7's partly-full-queue property learns how many bytes the kernel holds of a "
            "connection from Linux's /proc/net/tcp; run the suite on Linux with /proc "
            "mounted (or deselect that test).") from exc
    if tx is None or rx is None:
        return None
    return InKernel(tx, rx)
