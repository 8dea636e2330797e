"""Mutant S7 (C server): SEND never checks send_queue_limit.

The bug:

    static bool admit_send(Session *s, const unsigned char *data, size_t n) {
        if (!s || s->state != LIVE) return false;
        buf_append(&s->queue, data, n);   /* "realloc will cope" */
        return true;
    }

A peer that stops reading makes the server buffer everything sent to it, until malloc fails
and the process dies with every session in it. Caught by: S7 (SEND is never refused to a
stalled peer).
"""

from __future__ import annotations

from impls.c import mutant

OLD = "if (buf_pending(&s->queue) + n > P.send_queue_limit) return false;"
NEW = "/* BUG: no limit */"

make_server = mutant(OLD, NEW, "m_s07_c_limit_unchecked")
