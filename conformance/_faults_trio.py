"""`FaultInjector.wrap_stream`: the same faults for a Trio stream.

Trio's socket methods call the stdlib socket's C methods directly, so a wrapped stdlib socket
would be bypassed; the faults go in one level up, around `receive_some` and `send_all`. They
are played Trio's way: WOULD_BLOCK waits for readiness (a trip through the I/O loop, which
is what EAGAIN costs a Trio task), INTERRUPTED is a `trio.sleep`, and a SHORT send_all is
two send_all calls with a checkpoint between them -- a short write inside Trio's own loop.
"""

from __future__ import annotations

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
