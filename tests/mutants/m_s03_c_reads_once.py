"""Mutant S3 (C server): one recv() per edge-triggered event.

The bug:

    case EPOLLIN:
        n = recv(fd, buf, sizeof buf, 0);    /* level-triggered habit: one read per event */
        emit RECV ...
        return;

With EPOLLET the readiness is reported once, when data arrives. Whatever the one recv()
left in the kernel buffer is not reported again until the peer sends more, and a peer that
waits for its echo never sends more. Caught by: S3 (bytes stop reaching on_recv).
"""

from __future__ import annotations

from impls.c import mutant

OLD = "        s->unreturned++;\n    }"
NEW = "        s->unreturned++;\n        return; /* BUG: the edge is not drained */\n    }"

make_server = mutant(OLD, NEW, "m_s03_c_reads_once")
