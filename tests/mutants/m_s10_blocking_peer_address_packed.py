"""Mutant S10 (blocking): on_connect gets the peer's address as the kernel keeps it.

The bug, as it is written by someone who learned sockets from C, where `accept()` fills a
`sockaddr_in` whose `sin_addr` is four bytes in network order:

    conn, (host, port) = listener.accept()
    peer = (socket.inet_aton(host), port)   # "the raw address, like sin_addr"

The port is right, so every lookup by port still finds the session; but the application's
ban list, its log line and its per-IP connection limit all compare `b'\\x7f\\x00\\x00\\x01'`
with `'127.0.0.1'` and never match. The contract's `peer` is (host, port) as getpeername()
returns it, host a string. Caught by: S10 (every accepted connection's on_connect names its
peer: `Scenario.session` checks the address, not only the port). The first version of this
check came from a mutation tool, which found that nothing compared the host.
"""

from __future__ import annotations

import socket

from impls.blocking import BlockingServer, Session


class PackedAddressServer(BlockingServer):
    def _new_session(self, sid: int, conn: socket.socket, addr: tuple[str, int]) -> Session:
        s = super()._new_session(sid, conn, addr)
        s.peer = (socket.inet_aton(addr[0]), addr[1])  # type: ignore[assignment]  # BUG
        return s


make_server = PackedAddressServer
