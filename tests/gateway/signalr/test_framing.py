"""Framing: RS-separated text records and VarInt-prefixed binary messages (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from streamport.gateway.signalr import MessageTooLarge, ProtocolError
from streamport.gateway.signalr._framing import BinaryReader, TextReader, frame_binary, write_varint
from streamport.gateway.signalr._rawsocket import ws_frame

records = st.lists(st.binary().map(lambda b: b.replace(b"\x1e", b"")), max_size=20)


def _chop(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


@given(records, st.lists(st.integers(min_value=0), max_size=10))
def test_text_records_survive_any_split(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(m + b"\x1e" for m in messages)
    reader = TextReader()
    out: list[bytes] = []
    for piece in _chop(stream, cuts):
        out += reader.feed(piece)
    assert out == messages
    assert reader.pending == 0


@given(
    st.lists(st.binary(max_size=300), max_size=20), st.lists(st.integers(min_value=0), max_size=10)
)
def test_binary_messages_survive_any_split(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame_binary(m) for m in messages)
    reader = BinaryReader()
    out: list[bytes] = []
    for piece in _chop(stream, cuts):
        out += reader.feed(piece)
    assert out == messages
    assert reader.pending == 0


@given(st.integers(min_value=0, max_value=0x7FFFFFFF))
def test_varint_round_trip(n: int) -> None:
    prefix = write_varint(n)
    assert 1 <= len(prefix) <= 5
    value = shift = 0
    for byte in prefix:
        value |= (byte & 0x7F) << shift
        shift += 7
    assert value == n


def test_varint_known_bytes() -> None:
    assert write_varint(0) == b"\x00"
    assert write_varint(127) == b"\x7f"
    assert write_varint(128) == b"\x80\x01"
    assert write_varint(0x7FFFFFFF) == b"\xff\xff\xff\xff\x07"
    with pytest.raises(ProtocolError):
        write_varint(0x80000000)


def test_incomplete_text_record_waits() -> None:
    reader = TextReader()
    assert reader.feed(b'{"type":6}') == []
    assert reader.pending == 10
    assert reader.feed(b"\x1e{") == [b'{"type":6}']
    assert reader.pending == 1


def test_text_record_over_the_limit() -> None:
    reader = TextReader(max_message_size=8)
    assert reader.feed(b"12345678\x1e") == [b"12345678"]
    with pytest.raises(MessageTooLarge):
        reader.feed(b"123456789\x1e")
    with pytest.raises(MessageTooLarge):
        TextReader(max_message_size=8).feed(b"123456789")  # incomplete but already too large


def test_binary_over_the_limit_and_bad_prefix() -> None:
    with pytest.raises(MessageTooLarge):
        BinaryReader(max_message_size=4).feed(b"\x05")  # refused before the body arrives
    with pytest.raises(ProtocolError, match="2GB"):
        BinaryReader().feed(b"\xff\xff\xff\xff\x08")  # more than 0x7fffffff
    with pytest.raises(ProtocolError, match="2GB"):
        BinaryReader().feed(b"\x80\x80\x80\x80\x80\x01")  # six prefix bytes
    assert BinaryReader().feed(b"\x80") == []  # an incomplete prefix waits


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("binary", [False, True])
def test_ws_frame_is_read_back_by_a_websocket_client(size: int, binary: bool) -> None:
    """The frames the raw WebSocket path writes, parsed by the `websockets` client's own parser
    (the length encodings change at 126 and 65536 bytes)."""
    client = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN)
    payload = bytes(i % 251 for i in range(size))
    client.receive_data(ws_frame(payload, binary) + ws_frame(b"next", binary))
    frames = [f for f in client.events_received() if isinstance(f, Frame)]
    assert client.parser_exc is None
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    assert [(f.opcode, f.fin, bytes(f.data)) for f in frames] == [
        (opcode, True, payload),
        (opcode, True, b"next"),
    ]
