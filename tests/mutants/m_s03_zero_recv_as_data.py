"""Mutant S3 (select): the zero-byte recv is delivered to the application as data.

The bug:

    n = sock.recv_into(buf)
    handler.on_recv(sid, bytes(buf[:n]))   # also when n == 0
    if n == 0: close(...)

The application is handed an empty message it never sent; a protocol parser that reads a
header from it breaks. Caught by: S3 (on_recv is never called with empty data).
"""

from __future__ import annotations

from impls._core import CloseReason
from impls.select_ import SelectServer, Session


class EmptyRecvServer(SelectServer):
    def _on_readable(self, s: Session, buf: bytearray) -> None:
        assert self._handler is not None
        try:
            n = s.sock.recv_into(buf)
        except BlockingIOError:
            return
        except OSError:
            with self._lock:
                self._close(s, CloseReason.RESET)
            return
        self._call(self._handler.on_recv, s.id, bytes(buf[:n]))  # BUG: also when n == 0
        if n == 0:
            s.read_eof = True
            with self._lock:
                self._close(s, CloseReason.PEER_EOF)


make_server = EmptyRecvServer
