"""Mutant S10 (epoll): out of descriptors, wait for the next edge.

The bug:

    except OSError as exc:
        if exc.errno == errno.EMFILE:
            accept_pending = False   # "do not spin: the next connect will wake us"

accept() failing with EMFILE takes nothing: the connection stays in the backlog. Edge-
triggered, no new edge comes for it -- only a new connect makes one. Once descriptors are free
again, the connections already waiting are never accepted unless somebody else connects.
(It does not spin, which is why it looks right.) Caught by: S10 (the connection that waited
while accept() failed with EMFILE is accepted once descriptors are free).
"""

from __future__ import annotations

from impls.epoll_et import EpollServer


class WaitForEdgeServer(EpollServer):
    def _accept_failed(self, error: int | None) -> bool:
        backing_off = super()._accept_failed(error)
        if backing_off:
            self._accept_pending = False  # BUG: waits for a new edge, which may never come
        return backing_off


make_server = WaitForEdgeServer
