"""A minimal Session server on asyncio, run in a thread: the getting-started example.

docs/getting-started.md builds this file up step by step; CI runs the whole suite against it
(`python -m pytest conformance --impl=examples.quickstart_asyncio:make_server`), with fault
injection opted in. It is written the way a first asyncio server is written -- streams, a
task per session -- plus what the contract adds to that first version:

- the event loop runs in a thread of its own, so `send()` and `disconnect()` come from other
  threads (and from callbacks) and only hand work to the loop (`call_soon_threadsafe`);
- the send queue is counted by us, under a lock, because asyncio's transport buffer can only
  be read on the loop thread (S7);
- every ending -- the peer's FIN, a reset, `disconnect()`, a raising callback, `stop()` --
  goes through one coroutine, `_close`, which flushes within `linger` and then calls
  `on_release` exactly once (S2, S5, S9, S11, S12).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
import struct
import threading
from dataclasses import dataclass, field

from conformance.api import ServerConfig, SessionHandler
from conformance.faults import FaultInjector

# One receive takes at most this much; on_recv gets whatever one read returned.
RECV_SIZE = 65536
# accept() failed for lack of descriptors (EMFILE): the connection waits in the backlog, so
# retrying at once would spin a core (S6); wait this long for descriptors to be closed.
ACCEPT_RETRY = 0.1
# Accept errors that concern one connection or a passing shortage, never the listener.
ACCEPT_RETRYABLE = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
# SO_LINGER on, zero seconds: close() drops unsent bytes and sends RST -- an abort (S9).
ABORT = struct.pack("ii", 1, 0)


@dataclass(eq=False)
class Session:
    id: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    open: bool = True          # False once closing began: send()/disconnect() return False
    queued: int = 0            # accepted by send(), not yet taken by the kernel (S7)
    pending: list[bytes] = field(default_factory=list)  # accepted, not yet given to asyncio
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # reading, writing
    closing: asyncio.Task[None] | None = None


class AsyncioServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config   # no socket, no thread yet: the factory does no I/O
        self._lock = threading.Lock()   # guards the table and every session's queue
        self._sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)  # S1: never reused, unlike the socket's fd
        self._stopped = False
        self._faults: FaultInjector | None = None

    # ---- start

    def start(self, handler: SessionHandler, host: str = "127.0.0.1",
              port: int = 0) -> tuple[str, int]:
        self._handler = handler
        # Bind and listen here, in the caller's thread: once start() returns, connects wait
        # in the backlog (S10: it must hold 100) even before the loop runs.
        listener = socket.create_server((host, port), backlog=socket.SOMAXCONN)
        if self._faults is not None:
            listener = self._faults.wrap_listener(listener)  # accept() may fail EMFILE
        listener.setblocking(False)
        self._listener = listener
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asyncio-loop",
                                        daemon=True)
        self._thread.start()
        accepting = asyncio.run_coroutine_threadsafe(self._start_accepting(), self._loop)
        accepting.result()
        address: tuple[str, int] = listener.getsockname()[:2]
        return address

    async def _start_accepting(self) -> None:
        self._accepting = asyncio.create_task(self._accept_forever())

    # ---- accept

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self._listener)
            except OSError as e:
                if e.errno not in ACCEPT_RETRYABLE:
                    raise
                if e.errno != errno.ECONNABORTED:
                    await asyncio.sleep(ACCEPT_RETRY)
                continue
            await self._open_session(conn, (addr[0], addr[1]))

    async def _open_session(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        with self._lock:
            sid = next(self._ids)
        try:
            if self._faults is not None:
                conn = self._faults.wrap_socket(conn, sid)  # the same fd; use only this one
            reader, writer = await asyncio.open_connection(sock=conn, limit=RECV_SIZE)
        except OSError:
            conn.close()  # reset before we got to it: never announced, nothing to release
            return
        # write() hands asyncio everything; drain() then waits until its buffer is empty,
        # so "drained" means "taken by the kernel" (see _write_loop).
        writer.transport.set_write_buffer_limits(high=0)
        s = Session(sid, reader, writer)
        with self._lock:
            self._sessions[sid] = s
        try:
            self._handler.on_connect(sid, peer)
        except Exception:
            self._begin_close(s, graceful=False)  # S12: on_release is still owed
            return
        s.tasks = [asyncio.create_task(self._read_loop(s)),
                   asyncio.create_task(self._write_loop(s))]

    # ---- recv

    async def _read_loop(self, s: Session) -> None:
        try:
            while data := await s.reader.read(RECV_SIZE):
                self._handler.on_recv(s.id, data)
        except Exception:
            # a reset (nothing can be flushed), or on_recv raised: end this session only (S12)
            self._begin_close(s, graceful=False)
        else:
            self._begin_close(s, graceful=True)   # b"": the peer's FIN (S5)

    # ---- send

    def send(self, session_id: int, data: bytes) -> bool:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None or not s.open:
                return False  # S8: unknown, closing or released
            if s.queued + len(data) > self.config.send_queue_limit:
                return False  # S7: judged on the queue plus this call; nothing queued
            if data:
                s.queued += len(data)
                s.pending.append(bytes(data))
                # Never wait for the loop here: send() may run on the loop thread itself,
                # inside a callback (S13), and must not block on a slow peer (S6).
                self._loop.call_soon_threadsafe(s.wakeup.set)
            return True

    async def _write_loop(self, s: Session) -> None:
        """Hand the queue to asyncio and count it as queued until the kernel took it all:
        drain() is our write call in progress (docs/contract.md, S7)."""
        while True:
            with self._lock:
                chunk, s.pending = b"".join(s.pending), []
            if chunk:
                s.writer.write(chunk)
                await s.writer.drain()   # raises if the connection was lost: _close sees it
                with self._lock:
                    s.queued -= len(chunk)
                continue
            if not s.open:
                return                   # closing and nothing left: flushed
            # Look at the queue and the state *before* waiting: an Event does not count, so
            # the wakeup of a close that came during drain() may be used up already.
            await s.wakeup.wait()
            s.wakeup.clear()

    # ---- disconnect

    def disconnect(self, session_id: int) -> bool:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None or not s.open:
                return False
            s.open = False  # from here send() returns False (S9)
            self._loop.call_soon_threadsafe(self._begin_close, s, True)
            return True

    # ---- release

    def _begin_close(self, s: Session, graceful: bool) -> None:
        """Every ending starts here, on the loop thread; only the first one counts."""
        with self._lock:
            s.open = False
        if s.closing is None:
            s.closing = asyncio.get_running_loop().create_task(self._close(s, graceful))

    async def _close(self, s: Session, graceful: bool) -> None:
        reading, writing = s.tasks[:1], s.tasks[1:]
        for task in reading:
            task.cancel()  # no on_recv once closing began
        if graceful and writing:
            s.wakeup.set()  # the write loop hands over what is left, then returns
            done, _ = await asyncio.wait(writing, timeout=self.config.linger)
            # S9: flushed within linger, or abort; a reset ends the flush at once (S12)
            graceful = bool(done) and writing[0].exception() is None
        if not graceful:
            for task in writing:
                task.cancel()
            sock = s.writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, ABORT)
                except OSError:
                    pass  # already gone
            s.writer.transport.abort()
        else:
            s.writer.close()  # the buffer is empty: FIN now
        await asyncio.gather(*reading, *writing, return_exceptions=True)
        try:
            await s.writer.wait_closed()  # the socket is closed before on_release (S2)
        except Exception:
            pass  # closed with the error that ended it: closed all the same
        with self._lock:
            del self._sessions[s.id]
        try:
            self._handler.on_release(s.id)
        except Exception:
            pass  # S12: the application's error ends nothing more

    # ---- stop

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _shutdown(self) -> None:
        self._accepting.cancel()  # first close the door: no on_connect after this (S11)
        await asyncio.gather(self._accepting, return_exceptions=True)
        self._listener.close()
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            self._begin_close(s, graceful=True)  # flush within linger, then release
        await asyncio.gather(*(s.closing for s in sessions if s.closing is not None))

    # ---- fault injection (opt-in)

    def inject_faults(self, faults: FaultInjector) -> None:
        """Called by the suite before start(): our sockets will answer short, would-block,
        interrupted or reset at the calls it chooses."""
        self._faults = faults


def make_server(config: ServerConfig) -> AsyncioServer:
    return AsyncioServer(config)
