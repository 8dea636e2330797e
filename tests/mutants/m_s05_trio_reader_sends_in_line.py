"""Mutant S5 (trio): the reader sends on_recv's answer itself, before it reads again.

The bug:

    while True:
        data = await stream.receive_some()
        if not data:
            break                            # the peer's FIN
        on_recv(data)
        await stream.send_all(answer)        # what on_recv queued; reads no more until sent

Trio's tutorial echo server is written this way, and with a peer that reads it is fine. A
peer that stops reading fills its window and the server's send buffer: send_all waits, and
while it waits nobody reads. If that peer then sends FIN, only a reader would find it --
recv() returning 0, after the data before it -- so the session is never released (nor its
socket, task, or seat) until stop(). Its reading must not wait for its writing.
Caught by: S5 (released within linger of the FIN, while the send to that peer waits).
"""

from __future__ import annotations

from impls._core.lifecycle import CloseReason
from impls.trio_ import _STREAM_GONE, RECV_SIZE, Session, TrioServer


class InLineAnswerServer(TrioServer):
    async def _read(self, s: Session) -> CloseReason:
        assert self._handler is not None
        with s.read_scope:
            while not s.life.closing:
                try:
                    data = await s.stream.receive_some(RECV_SIZE)
                except _STREAM_GONE:
                    return CloseReason.RESET
                if not data:
                    return CloseReason.PEER_EOF
                tasks, s.tasks = s.tasks, None  # no writer task for on_recv's answer: ...
                answered = self._call(self._handler.on_recv, s.id, data)
                s.tasks = tasks
                if not answered:
                    return CloseReason.HANDLER_ERROR
                if s.queue and not s.writing:
                    s.writing = True
                    await self._write(s)  # BUG: ... the reader sends it, and reads no more
        return CloseReason.DISCONNECT


make_server = InLineAnswerServer
