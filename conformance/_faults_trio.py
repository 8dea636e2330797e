"""`FaultInjector.wrap_stream` and `wrap_trio_listener`: the same faults for Trio.

Trio's socket methods call the stdlib socket's C methods directly, so a wrapped stdlib socket
would be bypassed; the faults go in one level up, around `receive_some` and `send_all`. They
are played Trio's way: WOULD_BLOCK waits for readiness (a trip through the I/O loop, which
is what EAGAIN costs a Trio task), INTERRUPTED is a `trio.sleep`, and a SHORT send_all is
two send_all calls with a checkpoint between them -- a short write inside Trio's own loop.
The listener's accept() faults are played around `SocketListener.accept` (`FaultyListener`).
"""

from __future__ import annotations

import errno

import trio

from .faults import Fault, FaultInjector


class FaultyStream(trio.abc.HalfCloseableStream):
    def __init__(self, stream: trio.SocketStream, faults: FaultInjector, session_id: int):
        self.stream, self._faults, self._session_id = stream, faults, session_id

    async def _before(self, op: str) -> int | None:
        """Play the next step; return SHORT's cap."""
        step = self._faults.take(self.stream.socket, self._session_id, op, would_block=True)
        if step is None or step.fault is Fault.RESET:
            return None  # a reset was done: the real call fails as after an RST
        if step.fault is Fault.SHORT:
            return step.size
        if step.fault is Fault.WOULD_BLOCK:
            wait = trio.lowlevel.wait_readable if op == "recv" else trio.lowlevel.wait_writable
            await wait(self.stream.socket)
        else:
            await trio.sleep(step.pause)
        return None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        cap = await self._before("recv")
        if cap is not None:
            max_bytes = min(cap, max_bytes or cap)
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        cap = await self._before("send")
        view = memoryview(data)
        if cap is not None and cap < len(view):
            await self.stream.send_all(view[:cap])
            view = view[cap:]
        await self.stream.send_all(view)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


class FaultyListener(trio.abc.Listener[trio.SocketStream]):
    """A Trio listener whose accept() meets the plan's `accept` steps first.

    Trio's `SocketListener.accept` retries ECONNABORTED (and the like) in its own loop and
    passes EMFILE on to its caller, so that is what this does: ABORTED is noted and the
    accept goes on; EMFILE raises, after a checkpoint, as an accept() call of Trio's would.
    """

    def __init__(self, listener: trio.SocketListener, faults: FaultInjector) -> None:
        self.listener, self._faults = listener, faults
        self.socket = listener.socket

    async def accept(self) -> trio.SocketStream:
        while True:
            fault = self._faults.accept_fault()
            if fault is Fault.NONE:
                return await self.listener.accept()
            await trio.lowlevel.checkpoint()
            if fault is Fault.EMFILE:
                raise OSError(errno.EMFILE, "injected: too many open files")
            # ABORTED: Trio's SocketListener would retry; so do we.

    async def aclose(self) -> None:
        await self.listener.aclose()
