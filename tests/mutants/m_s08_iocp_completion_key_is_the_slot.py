"""Mutant S8 (iocp): the completion key is the pool slot, and a cancelled recv counts as done.

The bug, as it is usually written -- two habits that are each harmless alone:

    CreateIoCompletionPort((HANDLE)s->sock, port, s->slot, 0);   // key: the slot index

    void Session::SendFin() {                  // the send queue is flushed: FIN, end the recv
        shutdown(sock, SD_SEND);
        CancelIoEx((HANDLE)sock, &recvOv);
        recvPending = false;                   // "cancelled, so it is over":
        if (InterlockedDecrement(&ioCount) == 0) Release();   //   its IOCount goes now
    }

    Session& s = pool[key];                    // the worker: the session in the key's slot
    if (ov == &s.recvOv) {
        if (!s.recvPending) return;            // "the recv we cancelled: counted off already"
        s.recvPending = false;
        if (!ok) { s.Close(RESET); ... }       // any other failure ends the session

CancelIoEx does not end an operation: the cancelled WSARecv still completes, once, with
ERROR_OPERATION_ABORTED -- and a completion may be held back for a while. Released at once,
the session's slot goes to the next player (the pool's free list is last-in, first-out), and
when the cancelled completion comes, its key names the slot: it is dispatched to the newcomer,
whose own recv is pending, so it passes for the newcomer's recv failing, and the newcomer is
reset moments after connecting, for nothing it did. (With the session as the key, the late
completion would find the released session and be ignored; with an IOCount that waits for
it, no completion could come late.) Caught by: S8 (a session the test never ended is
released, its peer reset, after a session in the same slot was disconnected while its
cancelled recv's completion was held back).
"""

from __future__ import annotations

import socket

from conformance.api import ServerConfig
from impls._completion_port import OpKind, Packet
from impls._core import CloseReason, SessionPool
from impls._core.pool import INDEX_BITS
from impls._sockets import quietly
from impls.iocp import IocpServer, Key, Linger, Session

SLOT = (1 << INDEX_BITS) - 1


class SlotPool(SessionPool[Session]):
    def holder(self, index: int) -> Session | None:
        """The session in slot `index` now, whoever it is."""
        entry = self._slots[index] if index < len(self._slots) else None
        return entry[1] if entry is not None else None


class SlotKeyServer(IocpServer):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self._table = self._pool = SlotPool()

    def _worker(self) -> None:
        assert self._port is not None
        while True:
            packet = self._port.get()
            assert packet is not None
            key = packet.key
            if key is Key.QUIT:
                return
            if key is Key.LISTENER:
                self._on_accept_done(packet)
            elif key is Key.ACCEPT_RETRY:
                self._on_accept_retry()
            elif isinstance(key, Linger):
                self._on_linger_expired(key.session_id)
            elif isinstance(key, Session):
                with self._lock:  # BUG: the key is used as a slot index
                    s = self._pool.holder(key.id & SLOT)
                if s is None:
                    continue  # a free slot: nobody to give it to
                if packet.overlapped is None:
                    self._finished(s)  # the cancelled recv's IOCount (_send_fin)
                elif packet.overlapped.kind is OpKind.RECV:
                    self._on_recv_done(s, packet)
                else:
                    self._on_send_done(s, packet)
            else:
                raise AssertionError(f"completion with an unknown key: {packet}")

    def _send_fin(self, s: Session) -> None:
        assert self._port is not None
        quietly(s.sock.shutdown, socket.SHUT_WR)
        self._port.cancel(s.sock)
        if s.recv_ov is not None:
            # BUG: "cancelled, so it is over": its IOCount is given back now, by a packet of
            # our own (a worker releases the session), not by its completion, still to come.
            s.recv_ov = None
            self._port.post(s, None)

    def _on_recv_done(self, s: Session, packet: Packet) -> None:
        assert self._handler is not None
        data = b""
        with s.lock:
            if s.recv_ov is None:
                return  # "the recv we cancelled: its IOCount was given back already"
            s.recv_ov = None
            if packet.error:  # (a cancelled recv never gets here, see above)
                self._close(s, CloseReason.RESET)
            elif packet.nbytes == 0:
                self._close(s, CloseReason.PEER_EOF)
            else:
                s.ring.commit(packet.nbytes)
                data = s.ring.take()
        if data:
            ok = self._call(self._handler.on_recv, s.id, data)
            with s.lock:
                if not ok:
                    self._close(s, CloseReason.HANDLER_ERROR)
                self._recv_post(s)
        self._finished(s)


make_server = SlotKeyServer
