"""Mutant S6 (select): every socket is always in the write set.

The bug:

    wlist = [s.sock for s in sessions]   # "then we never miss a chance to write"

A socket with room in its send buffer is always writable, and select() is level-triggered:
it returns at once, every time, with nothing to do. The server burns a whole core while every
player is idle. Caught by: S6 (far less than a core while idle with a stalled peer).
"""

from __future__ import annotations

from impls.select_ import SelectServer, Session


class AlwaysWritableServer(SelectServer):
    @staticmethod
    def _wants_write(s: Session) -> bool:
        return True  # BUG: level-triggered write interest with nothing to write


make_server = AlwaysWritableServer
