"""Mutant S11 (C server): STOP releases every session but leaves the listener open.

The bug:

    case CMD_STOP:
        for (size_t i = 0; i < n_sessions; i++) begin_close(sessions[i]);
        /* the listener? "it closes when the process exits" */

STOP closes the sessions it knows and forgets the door. The listener stays in the epoll set,
so a client that connects while STOP is under way is accepted as a new session that nobody
closes; and a server that is stopped and started again in one process (a test suite, a
reload) leaks a listening socket and its port every time. Caught by: S11 (a socket still
open after STOP answered, read from the program's /proc; or STOP never answering).
"""

from __future__ import annotations

from impls.c import mutant

OLD = "    stop_listening(); /* no CONNECT after STOP (S11) */"
NEW = "    /* BUG: the listener stays open */"

make_server = mutant(OLD, NEW, "m_s11_c_stop_keeps_the_listener")
