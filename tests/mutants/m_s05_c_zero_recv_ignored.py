"""Mutant S5 (C server): recv() returning 0 is taken for "nothing to read yet".

The bug:

    ssize_t n = recv(s->fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == EAGAIN)) return;   /* "no data" */

0 is not "no data" (that is -1 with EAGAIN): it is the peer's FIN, and it comes once.
Edge-triggered epoll reports it once too, so the session sits there forever -- its socket,
its memory and the player's seat never freed. Caught by: S5 (no release after the FIN).
"""

from __future__ import annotations

from impls.c import mutant

OLD = "if (n < 0 && errno == EAGAIN) return; /* drained: the next byte is a new edge */"
NEW = "if (n == 0 || (n < 0 && errno == EAGAIN)) return; /* BUG: 0 is the FIN */"

make_server = mutant(OLD, NEW, "m_s05_c_zero_recv_ignored")
