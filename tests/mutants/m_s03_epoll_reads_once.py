"""Mutant S3 (epoll): one recv() per edge-triggered event.

The bug, written by everyone who moves from select to EPOLLET:

    if events & EPOLLIN:
        n = sock.recv_into(buf)          # one read, as select taught us
        handler.on_recv(sid, buf[:n])

Edge-triggered epoll reports "readable" once, when data arrives; whatever one recv() left in
the buffer is never announced again until more data comes. The last part of a message sits
in the kernel while the game waits for it. Caught by: S3 (on_recv delivers all the peer sent).
"""

from __future__ import annotations

from impls._core import CloseReason
from impls.epoll_et import EpollServer, Session


class ReadOnceServer(EpollServer):
    def _on_readable(self, s: Session, buf: bytearray) -> None:
        assert self._handler is not None
        if s.read_eof or s.sock.fileno() < 0:
            return
        try:
            n = s.sock.recv_into(buf)  # BUG: not drained until EAGAIN
        except BlockingIOError:
            return
        except OSError:
            with self._lock:
                self._close(s, CloseReason.RESET)
            return
        if n == 0:
            s.read_eof = True
            with self._lock:
                self._close(s, CloseReason.PEER_EOF)
            return
        self._call(self._handler.on_recv, s.id, bytes(buf[:n]))


make_server = ReadOnceServer
