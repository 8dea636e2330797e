"""Mutant S6 (iocp): an AcceptEx that failed with EMFILE is re-posted at once.

The bug:

    if packet.error:
        post_accept()            # keep ACCEPTS_POSTED outstanding, whatever went wrong

Out of descriptors, the connection stays in the backlog and the listener stays ready, so the
new AcceptEx fails at once with EMFILE too, is re-posted, fails... Workers and the port pass
the same failure around as fast as they can: a full core burns until a descriptor is freed.
Caught by: S6 (far less than a core while accept() fails with EMFILE).
"""

from __future__ import annotations

from impls.iocp import IocpServer


class RepostAtOnceServer(IocpServer):
    def _accept_failed(self, error: int) -> None:
        self._accept_post()  # BUG: no back-off after EMFILE


make_server = RepostAtOnceServer
