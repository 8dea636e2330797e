"""Mutant S12 (select): a reset that comes while the session is already closing is ignored.

The bug:

    def close(s, reason):
        if s.closing:
            return                       # "it is closing anyway; the first reason wins"

The first reason to close decides how: disconnect() means "flush, then FIN". If the peer then
resets, the flush can never finish, but the session keeps waiting for it until linger
expires -- and all that time the reset socket is readable (the error) on every select(), so
the loop spins. A reset of an *open* session is handled at once, which is why only a reset
during a graceful close shows it. The reference models abort at once (select and epoll did
not, until a sampled mutation run's situation put a reset there; issue 9).
Caught by: S12 (`test_s12_reset_ends_a_graceful_close`: no on_release within a second of
the reset).
"""

from __future__ import annotations

from impls._core import CloseReason
from impls.select_ import SelectServer, Session


class ResetWhileClosingIgnoredServer(SelectServer):
    def _close(self, s: Session, reason: CloseReason) -> bool:
        if s.life.closing:
            return False  # BUG: a reset after the first reason changes nothing
        return super()._close(s, reason)


make_server = ResetWhileClosingIgnoredServer
