"""JSON and MessagePack hub protocols and the handshake, byte for byte (no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamport.gateway.signalr import (
    JsonHubProtocol,
    MessagePackHubProtocol,
    ProtocolError,
    TransferFormat,
)
from streamport.gateway.signalr._messages import (
    Ack,
    CancelInvocation,
    Close,
    Completion,
    HubMessage,
    Invocation,
    Ping,
    Sequence,
    StreamItem,
)
from streamport.gateway.signalr._protocol import parse_handshake

JSON = JsonHubProtocol()
MSGPACK = MessagePackHubProtocol()
PROTOCOLS = {"json": JSON, "messagepack": MSGPACK}
BOTH = frozenset(TransferFormat)


def _json_messages(text: str) -> list[HubMessage]:
    return JSON.reader(None).feed(text.encode())


def test_json_writes_exact_bytes() -> None:
    assert JSON.ping() == b'{"type":6}\x1e'
    assert JSON.close(None, False) == b'{"type":7}\x1e'
    assert JSON.close("Error!", True) == b'{"type":7,"error":"Error!","allowReconnect":true}\x1e'
    assert (
        JSON.invocation("Notify", ["hi"]) == b'{"type":1,"target":"Notify","arguments":["hi"]}\x1e'
    )
    assert JSON.completion("0", result=42) == b'{"type":3,"invocationId":"0","result":42}\x1e'
    assert JSON.completion("0", result=None) == b'{"type":3,"invocationId":"0","result":null}\x1e'
    assert JSON.completion("0") == b'{"type":3,"invocationId":"0"}\x1e'
    assert JSON.completion("0", error="bad") == b'{"type":3,"invocationId":"0","error":"bad"}\x1e'
    assert JSON.stream_item("1", None) == b'{"type":2,"invocationId":"1","item":null}\x1e'


def test_json_types_like_the_js_suite() -> None:
    out = JSON.invocation("X", [b"\x01\x02\x03", datetime(2000, 1, 1, tzinfo=UTC)])
    assert json.loads(out[:-1])["arguments"] == ["AQID", "2000-01-01T00:00:00Z"]


def test_json_reads_every_message_type_in_any_key_order() -> None:
    messages = _json_messages(
        '{"arguments":[40,2],"target":"Add","invocationId":"0","type":1,"headers":{"a":"b"}}\x1e'
        '{"type":1,"target":"Notify","arguments":[],"streamIds":["s"]}\x1e'
        '{"type":4,"invocationId":"1","target":"Counter","arguments":[3]}\x1e'
        '{"type":2,"invocationId":"s","item":null}\x1e'
        '{"type":3,"invocationId":"s","result":null,"error":null}\x1e'
        '{"type":3,"invocationId":"t","error":"boom"}\x1e'
        '{"type":5,"invocationId":"1"}\x1e{"type":6}\x1e{"type":7,"error":"x"}\x1e'
        '{"type":8,"sequenceId":3}\x1e{"type":9,"sequenceId":4}\x1e{"type":99}\x1e'
    )
    assert messages == [
        Invocation("0", "Add", [msgspec.Raw(b"40"), msgspec.Raw(b"2")], [], False),
        Invocation(None, "Notify", [], ["s"], False),
        Invocation("1", "Counter", [msgspec.Raw(b"3")], [], True),
        StreamItem("s", msgspec.Raw(b"null")),
        Completion("s", None, msgspec.Raw(b"null")),
        Completion("t", "boom", msgspec.Raw(b"")),
        CancelInvocation("1"),
        Ping(),
        Close("x", False),
        Ack(3),
        Sequence(4),
    ]  # the unknown type 99 is skipped


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"target":"x","arguments":[]}', "Missing required property 'type'."),
        ('{"type":1,"arguments":[]}', "Missing required property 'target'"),
        ('{"type":1,"target":"x"}', "Missing required property 'arguments'."),
        ('{"type":2,"invocationId":"1"}', "Missing required property 'item'."),
        ('{"type":1,"target":"x","arguments":{}}', "Error reading JSON."),
        ("[1,2]", "Error reading JSON."),
        ("{oops", "Error reading JSON."),
    ],
)
def test_json_rejects(text: str, error: str) -> None:
    with pytest.raises(ProtocolError, match=error.replace("(", r"\(").replace(".", r"\.")):
        _json_messages(text + "\x1e")


def test_messagepack_known_bodies() -> None:
    assert MSGPACK.ping() == bytes.fromhex("029106")
    assert MSGPACK.close(None, False) == b"\x04" + bytes.fromhex("9307C0C2")
    assert MSGPACK.close("Error!", False) == b"\x0a" + bytes.fromhex("9307A64572726F7221C2")
    assert MSGPACK.close(None, True) == b"\x04" + bytes.fromhex("9307C0C3")
    invocation = MSGPACK.invocation("T", [1])
    assert msgspec.msgpack.decode(invocation[1:]) == [1, {}, None, "T", [1], []]
    assert msgspec.msgpack.decode(MSGPACK.completion("i")[1:]) == [3, {}, "i", 2]
    assert msgspec.msgpack.decode(MSGPACK.completion("i", result=None)[1:]) == [3, {}, "i", 3, None]
    assert msgspec.msgpack.decode(MSGPACK.completion("i", error="e")[1:]) == [3, {}, "i", 1, "e"]
    assert msgspec.msgpack.decode(MSGPACK.stream_item("i", 5)[1:]) == [2, {}, "i", 5]


def test_messagepack_types_like_the_js_suite() -> None:
    # bytes -> bin (Uint8Array in JS), datetime -> timestamp extension -1 (Date in JS)
    body = MSGPACK.invocation("X", [b"\x01\x02\x03", datetime(2000, 1, 1, tzinfo=UTC)])[1:]
    assert bytes.fromhex("c403010203") in body
    assert bytes.fromhex("d6ff386d4380") in body


def _msgpack_messages(*bodies: list[object]) -> list[HubMessage]:
    data = b"".join(bytes([len(b)]) + b for b in (msgspec.msgpack.encode(body) for body in bodies))
    return MSGPACK.reader(None).feed(data)


def test_messagepack_reads_five_and_six_element_invocations() -> None:
    messages = _msgpack_messages(
        [1, {}, "0", "Add", [40, 2]],
        [1, {}, None, "Notify", [], ["s"]],
        [1, {}, "", "Notify", []],
        [4, {}, "1", "Counter", [3]],
        [2, {}, "s", "item"],
        [3, {}, "s", 2],
        [3, {}, "t", 1, "boom"],
        [3, {}, "u", 3, 7],
        [5, {}, "xyz"],
        [6],
        [7, None],
        [7, "bye", True],
    )
    add, notify, empty_id, stream, item, void, err, value, cancel, ping, close, close2 = messages
    assert isinstance(add, Invocation) and add.invocation_id == "0" and add.stream_ids == []
    assert MSGPACK.decode_value(add.arguments[0], int) == 40
    assert notify == Invocation(None, "Notify", [], ["s"], False)
    assert isinstance(empty_id, Invocation) and empty_id.invocation_id is None  # "" = non-blocking
    assert isinstance(stream, Invocation) and stream.streaming
    assert isinstance(item, StreamItem) and MSGPACK.decode_value(item.item, str) == "item"
    assert void == Completion("s", None, msgspec.Raw(b""))
    assert err == Completion("t", "boom", msgspec.Raw(b""))
    assert isinstance(value, Completion) and MSGPACK.decode_value(value.result, int) == 7
    assert cancel == CancelInvocation("xyz")
    assert ping == Ping()
    assert close == Close(None, False) and close2 == Close("bye", True)


def test_messagepack_rejects_garbage() -> None:
    with pytest.raises(ProtocolError):
        MSGPACK.reader(None).feed(b"\x01\xc1")  # 0xc1 is never valid msgpack
    with pytest.raises(ProtocolError):
        _msgpack_messages([1, {}, "0"])  # too short


def test_handshake() -> None:
    assert parse_handshake(b'{"protocol":"json","version":1}', PROTOCOLS, BOTH) is JSON
    assert parse_handshake(b'{"version":0,"protocol":"messagepack"}', PROTOCOLS, BOTH) is MSGPACK
    assert parse_handshake(b'{"protocol":"json","version":2}', PROTOCOLS, BOTH) is JSON
    cases = [
        (b'{"protocol":"json","version":3}', BOTH, "version 3 of the 'json' protocol"),
        (b'{"protocol":"protobuf","version":1}', BOTH, "The protocol 'protobuf' is not supported."),
        (b'{"protocol":"messagepack","version":1}', frozenset({TransferFormat.TEXT}), "'Binary'"),
        (b"nope", BOTH, "An unexpected error occurred during connection handshake."),
    ]
    for record, formats, error in cases:
        with pytest.raises(ProtocolError) as info:
            parse_handshake(record, PROTOCOLS, formats)
        assert error in info.value.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=4), st.text(min_size=1))
def test_invocation_round_trips_through_both_protocols(args: list[object], target: str) -> None:
    for protocol in (JSON, MSGPACK):
        data = protocol.invocation(target, args, "7")
        (message,) = protocol.reader(None).feed(data)
        assert isinstance(message, Invocation)
        assert message.target == target and message.invocation_id == "7"
        assert [protocol.decode_value(raw, object) for raw in message.arguments] == args
