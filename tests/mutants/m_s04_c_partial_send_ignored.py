"""Mutant S4 (C server): a partial send() is taken as complete.

The bug:

    ssize_t n = send(s->fd, queue, pending, MSG_NOSIGNAL);
    buf_consume(&s->queue, buf_pending(&s->queue));   /* "send() sends what I give it" */

A non-blocking send() takes only what fits in the kernel's send buffer and returns how much
that was. Taking the whole queue off anyway drops the rest of it: the peer's stream has a hole
where the kernel was full. Caught by: S4 (the peer receives fewer bytes than send() accepted,
with the offset of the first gap).
"""

from __future__ import annotations

from impls.c import mutant

OLD = "buf_consume(&s->queue, (size_t)n); /* S4: a partial send leaves the rest queued */"
NEW = "buf_consume(&s->queue, buf_pending(&s->queue)); /* BUG: ignores n */"

make_server = mutant(OLD, NEW, "m_s04_c_partial_send_ignored")
