"""The wire protocol's frames, without sockets or processes (docs/wire-protocol.md)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import _wire as wire

u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=40)

frames = st.one_of(
    st.builds(wire.Hello, u16, text),
    st.builds(wire.Started, u32, u16),
    st.builds(wire.Result, u32, st.integers(0, 1)),
    st.builds(wire.Failed, u32, text),
    st.builds(wire.Connect, u64, u16, text),
    st.builds(wire.Recv, u64, st.binary(max_size=300)),
    st.builds(wire.Release, u64),
    st.builds(wire.Start, u32, u16, u64, u32, u32, u16, text),
    st.builds(wire.Send, u32, u64, st.binary(max_size=300)),
    st.builds(wire.Disconnect, u32, u64),
    st.builds(wire.Stop, u32),
    st.builds(wire.CallbackFailed, u64),
    st.builds(wire.Returned, u64),
)


def read_all(data: bytes) -> list[wire.Frame]:
    reader = wire.FrameReader(io.BufferedReader(io.BytesIO(data)).read)
    out = []
    while (frame := reader.next()) is not None:
        out.append(frame)
    return out


@settings(max_examples=50, deadline=None)
@given(st.lists(frames, max_size=8))
def test_frames_round_trip_back_to_back(sent: list[wire.Frame]) -> None:
    assert read_all(b"".join(map(wire.encode, sent))) == sent


def test_the_echo_transcript_of_the_docs() -> None:
    """The bytes docs/wire-protocol.md shows for one echo round trip."""
    assert wire.encode(wire.Hello(1, "")).hex(" ") == "00 00 00 03 01 00 01"
    assert wire.encode(wire.Start(1, 1, 1 << 20, 2, 2000, 0, "127.0.0.1")).hex(" ") == (
        "00 00 00 22 81 00 00 00 01 00 01 00 00 00 00 00 10 00 00 00 00 00 02 00 00 07 d0 "
        "00 00 31 32 37 2e 30 2e 30 2e 31")
    assert wire.encode(wire.Started(1, 40000)).hex(" ") == "00 00 00 07 02 00 00 00 01 9c 40"
    assert wire.encode(wire.Connect(1, 50522, "127.0.0.1")).hex(" ") == (
        "00 00 00 14 10 00 00 00 00 00 00 00 01 c5 5a 31 32 37 2e 30 2e 30 2e 31")
    assert wire.encode(wire.Returned(1)).hex(" ") == "00 00 00 09 86 00 00 00 00 00 00 00 01"
    assert wire.encode(wire.Recv(1, b"hi")).hex(" ") == (
        "00 00 00 0b 11 00 00 00 00 00 00 00 01 68 69")
    assert wire.encode(wire.Send(2, 1, b"hi")).hex(" ") == (
        "00 00 00 0f 82 00 00 00 02 00 00 00 00 00 00 00 01 68 69")
    assert wire.encode(wire.Result(2, 1)).hex(" ") == "00 00 00 06 03 00 00 00 02 01"
    assert wire.encode(wire.Release(1)).hex(" ") == "00 00 00 09 12 00 00 00 00 00 00 00 01"
    assert wire.encode(wire.Stop(3)).hex(" ") == "00 00 00 05 84 00 00 00 03"


@pytest.mark.parametrize(("data", "says"), [
    (b"\x00\x00\x00\x00\x01", "a frame length of 0"),
    (b"\x00\x00\x00\x02\x77\x00", "frame type 0x77 is not one of this protocol's"),
    (b"\x00\x00\x00\x05\x12\x00\x00", "the stream ended inside a frame of 5 bytes"),
    (b"\x00\x00\x00", "the stream ended inside a frame header"),
    (b"\x00\x00\x00\x03\x12\x00\x01", "RELEASE needs at least 8 bytes of body, got 2"),
    (b"\x00\x00\x00\x0a\x12" + bytes(9), "RELEASE has 8 bytes of body, got 9"),
    (b"\x00\x00\x00\x06\x03\x00\x00\x00\x01\x07", "RESULT value must be 0 or 1, got 7"),
    (b"\x00\x00\x00\x04\x04\x00\x00\x00\x01\xff" [:9], "FAILED needs at least 4 bytes"),
    (b"\x00\x00\x00\x06\x04\x00\x00\x00\x01\xff", "its text is not UTF-8"),
    (b"DEBUG: got 5 bytes\n", "does the program print to stdout?"),
])
def test_bytes_that_are_not_a_frame_say_which_rule_they_break(data: bytes, says: str) -> None:
    with pytest.raises(wire.WireError, match=says.replace("?", r"\?")):
        read_all(data)


def test_a_frame_over_the_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(wire.WireError, match="a frame length of 1073741825"):
        read_all((wire.MAX_FRAME + 1).to_bytes(4, "big") + b"\x11")


def test_encoding_refuses_what_does_not_fit() -> None:
    with pytest.raises(wire.WireError, match="Release"):
        wire.encode(wire.Release(2**64))
