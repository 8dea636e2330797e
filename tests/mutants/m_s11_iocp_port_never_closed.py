"""Mutant S11 (iocp): stop() never closes the completion port.

The bug:

    void Stop() {
        CancelIoEx(listener, NULL);
        /* ... close every session, wait for their completions ... */
        for (int i = 0; i < workers; i++)
            PostQueuedCompletionStatus(iocp, 0, KEY_QUIT, NULL);
        WaitForMultipleObjects(workers, threads, TRUE, INFINITE);
        // "the process is going away anyway" -- no CloseHandle(iocp)
    }

Every session is released and every worker ends, so nothing looks wrong after one stop().
But the port stays open: here its epoll and eventfd stay open; on Windows the handle and its
kernel object stay. A server that is restarted in the
same process -- a test suite, a hot reload -- leaves one more port behind every time, until
the process runs out of handles. Caught by: S11 (the open fds keep growing over start/stop
cycles).
"""

from __future__ import annotations

import threading

from impls._core import CloseReason
from impls.iocp import IocpServer, Key


class PortNeverClosedServer(IocpServer):
    def stop(self) -> None:
        if threading.current_thread() in self._workers:
            raise RuntimeError("stop() was called from inside a callback; call it from the owner")
        with self._lock:
            if self._stopping or self._port is None or self._listener is None:
                return
            self._stopping = True
            sessions = self._table.snapshot()
        port, listener = self._port, self._listener
        port.cancel(listener)
        for s in sessions:
            with s.lock:
                self._close(s, CloseReason.STOP)
        with self._lock:
            self._all_done.wait_for(lambda: not self._table and not self._accepts_pending)
        listener.close()
        for _ in self._workers:
            port.post(Key.QUIT, None)
        for w in self._workers:
            w.join()
        # BUG: no port.close() -- its epoll and eventfd outlive the server


make_server = PortNeverClosedServer
