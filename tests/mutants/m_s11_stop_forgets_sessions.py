"""Mutant S11 (blocking): stop() closes the listener but not the sessions.

The bug:

    def stop(self):
        self.listener.close()            # "no new players; the rest will leave on their own"

The sessions' threads and sockets live on after stop() returns, on_release never comes for
them, and a server restarted in the same process leaks a little more each time. Caught by:
S11 (on_release for every session before stop() returns).
"""

from __future__ import annotations

import socket

from impls.blocking import BlockingServer


class ForgetfulStopServer(BlockingServer):
    def stop(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._acceptor is not None:
            self._acceptor.join()
        if self._listener is not None:
            self._listener.close()
        # BUG: the live sessions are neither closed nor waited for


make_server = ForgetfulStopServer
