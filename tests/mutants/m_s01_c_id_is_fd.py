"""Mutant S1 (C server): the session id is the socket's file descriptor.

The bug:

    int fd = accept4(listener, ...);
    s->id = (uint64_t)fd;                 /* "the fd is unique anyway" */

It is unique only while the socket is open. The kernel hands out the lowest free descriptor,
so the next connection after a close gets the same number, and a late SEND for the old player
reaches the new one. Caught by: S1 (an id handed out twice, over many connect/close cycles).
"""

from __future__ import annotations

from impls.c import mutant

OLD = "s->id = P.next_id++; /* S1: a counter, never the fd the kernel will hand out again */"
NEW = "s->id = (uint64_t)fd; /* BUG: the kernel reuses fds */"

make_server = mutant(OLD, NEW, "m_s01_c_id_is_fd")
