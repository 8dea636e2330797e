"""The wire protocol's frames (docs/wire-protocol.md): encode, decode, read from a stream.

Every frame, both directions, is `u32 length | u8 type | body`, big-endian, where `length`
counts the type byte and the body. A body is a fixed run of integers (`struct` formats below)
and, for some types, a variable tail: the `rest` of the frame, bytes or UTF-8 text. No
sockets here: the adapter (`_exec.py`) and the Python program (`impls/wire.py`) share it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass
from enum import IntEnum
from typing import ClassVar

__all__ = [
    "MAX_FRAME", "VERSION", "CallbackFailed", "Connect", "Disconnect", "Failed", "Frame",
    "FrameReader", "FrameType", "Hello", "Recv", "Release", "Result", "Returned", "Send", "Start",
    "Started", "Stop", "WireError", "decode", "encode",
]

VERSION = 1
"""The protocol version this suite speaks (HELLO and START carry it)."""

MAX_FRAME = 1 << 30
"""The largest `length` a frame may have: type byte plus body."""

_LENGTH = struct.Struct(">I")


class FrameType(IntEnum):
    # program -> suite
    HELLO = 0x01
    STARTED = 0x02
    RESULT = 0x03
    FAILED = 0x04
    CONNECT = 0x10
    RECV = 0x11
    RELEASE = 0x12
    # suite -> program
    START = 0x81
    SEND = 0x82
    DISCONNECT = 0x83
    STOP = 0x84
    CALLBACK_FAILED = 0x85
    RETURNED = 0x86


class WireError(Exception):
    """Bytes that are not a frame of this protocol; the message says which rule they break."""


@dataclass(frozen=True)
class Frame:
    """A frame: its integer fields in `FIXED` order, then `rest` if `REST` is not None."""

    TYPE: ClassVar[FrameType]
    FIXED: ClassVar[str]  # struct format of the integer fields, big-endian
    REST: ClassVar[str | None] = None  # "bytes", "text" or None (no tail)


@dataclass(frozen=True)
class Hello(Frame):
    TYPE = FrameType.HELLO
    FIXED = ">H"
    REST = "text"
    version: int
    name: str = ""


@dataclass(frozen=True)
class Started(Frame):
    TYPE = FrameType.STARTED
    FIXED = ">IH"
    tag: int
    port: int


@dataclass(frozen=True)
class Result(Frame):
    TYPE = FrameType.RESULT
    FIXED = ">IB"
    tag: int
    value: int  # 0 = False, 1 = True


@dataclass(frozen=True)
class Failed(Frame):
    TYPE = FrameType.FAILED
    FIXED = ">I"
    REST = "text"
    tag: int
    message: str


@dataclass(frozen=True)
class Connect(Frame):
    TYPE = FrameType.CONNECT
    FIXED = ">QH"
    REST = "text"
    session_id: int
    peer_port: int
    peer_host: str


@dataclass(frozen=True)
class Recv(Frame):
    TYPE = FrameType.RECV
    FIXED = ">Q"
    REST = "bytes"
    session_id: int
    data: bytes


@dataclass(frozen=True)
class Release(Frame):
    TYPE = FrameType.RELEASE
    FIXED = ">Q"
    session_id: int


@dataclass(frozen=True)
class Start(Frame):
    TYPE = FrameType.START
    FIXED = ">IHQIIH"
    REST = "text"
    tag: int
    version: int
    send_queue_limit: int
    workers: int
    linger_ms: int
    port: int
    host: str


@dataclass(frozen=True)
class Send(Frame):
    TYPE = FrameType.SEND
    FIXED = ">IQ"
    REST = "bytes"
    tag: int
    session_id: int
    data: bytes


@dataclass(frozen=True)
class Disconnect(Frame):
    TYPE = FrameType.DISCONNECT
    FIXED = ">IQ"
    tag: int
    session_id: int


@dataclass(frozen=True)
class Stop(Frame):
    TYPE = FrameType.STOP
    FIXED = ">I"
    tag: int


@dataclass(frozen=True)
class CallbackFailed(Frame):
    TYPE = FrameType.CALLBACK_FAILED
    FIXED = ">Q"
    session_id: int


@dataclass(frozen=True)
class Returned(Frame):
    TYPE = FrameType.RETURNED
    FIXED = ">Q"
    session_id: int


_CLASSES: dict[int, type[Frame]] = {
    cls.TYPE: cls for cls in (Hello, Started, Result, Failed, Connect, Recv, Release, Start,
                              Send, Disconnect, Stop, CallbackFailed, Returned)
}


def encode(frame: Frame) -> bytes:
    """The frame's bytes, length prefix included."""
    fields = astuple(frame)
    rest = b""
    if frame.REST is not None:
        tail = fields[-1]
        fields = fields[:-1]
        rest = tail.encode() if isinstance(tail, str) else bytes(tail)
    try:
        body = struct.pack(frame.FIXED, *fields)
    except struct.error as exc:
        raise WireError(f"{type(frame).__name__}{fields}: {exc}") from None
    length = 1 + len(body) + len(rest)
    if length > MAX_FRAME:
        raise WireError(f"{type(frame).__name__}: {length} bytes is over the {MAX_FRAME} limit")
    return b"".join((_LENGTH.pack(length), bytes((frame.TYPE,)), body, rest))


def decode(kind: int, body: bytes) -> Frame:
    """The frame of type `kind` with `body` (what follows the type byte)."""
    cls = _CLASSES.get(kind)
    if cls is None:
        raise WireError(f"frame type 0x{kind:02x} is not one of this protocol's")
    size = struct.calcsize(cls.FIXED)
    name = cls.TYPE.name
    if len(body) < size:
        raise WireError(f"{name} needs at least {size} bytes of body, got {len(body)}")
    fields: list[object] = list(struct.unpack_from(cls.FIXED, body))
    tail = body[size:]
    if cls.REST is None and tail:
        raise WireError(f"{name} has {size} bytes of body, got {len(body)}")
    if cls.REST == "bytes":
        fields.append(bytes(tail))
    elif cls.REST == "text":
        try:
            fields.append(tail.decode())
        except UnicodeDecodeError as exc:
            raise WireError(f"{name}: its text is not UTF-8 ({exc})") from None
    if cls is Result and fields[1] not in (0, 1):
        raise WireError(f"RESULT value must be 0 or 1, got {fields[1]}")
    return cls(*fields)


class FrameReader:
    """Frames from a stream, one at a time. `read(n)` must return n bytes, or fewer only at
    end of stream (a `BufferedReader.read` does)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.frames = 0  # frames read so far, for messages ("the 3rd frame ...")

    def next(self) -> Frame | None:
        """The next frame; None at end of stream between frames. Raises WireError on bytes
        that are not a frame and on a stream that ends inside one."""
        head = self._read(5)
        if not head:
            return None
        if len(head) < 5:
            raise WireError(f"the stream ended inside a frame header ({head.hex(' ')})")
        (length,) = _LENGTH.unpack_from(head)
        if not 1 <= length <= MAX_FRAME:
            raise WireError(f"a frame length of {length} (header {head.hex(' ')}); it must be "
                            f"1 to {MAX_FRAME}{_as_text(head)}")
        body = self._read(length - 1) if length > 1 else b""
        if len(body) < length - 1:
            raise WireError(f"the stream ended inside a frame of {length} bytes "
                            f"(after {1 + len(body)})")
        try:
            frame = decode(head[4], body)
        except WireError as exc:
            raise WireError(f"{exc}{_as_text(head)}") from None
        self.frames += 1
        return frame


def _as_text(head: bytes) -> str:
    """A hint when a header reads as text: a program that printed to stdout."""
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return (f" -- those bytes read as text, {head.decode()!r}: does the program print to "
                f"stdout? stdout carries frames only; logs go to stderr")
    return ""
