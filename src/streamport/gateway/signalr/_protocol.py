"""The two hub protocols (JSON and MessagePack) and the handshake.

A protocol object is stateless and shared by all connections; each connection gets its own `reader()`
(the framing buffer). Writers return complete framed messages, so several can be concatenated into one
WebSocket frame or poll body and a message is never split.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec

from ._framing import RS, BinaryReader, ProtocolError, TextReader, frame_binary
from ._messages import (
    EMPTY_RAW,
    PING,
    Ack,
    CancelInvocation,
    Close,
    Completion,
    HubMessage,
    Invocation,
    StreamItem,
)
from ._messages import (
    Sequence as SequenceMessage,
)


class TransferFormat(enum.Enum):
    TEXT = "Text"
    BINARY = "Binary"


class _Unset:
    """Marker: a Completion without a result (void)."""


VOID: Any = _Unset()


class HubProtocol:
    """What a hub protocol must do. Subclasses: `JsonHubProtocol`, `MessagePackHubProtocol`."""

    name: ClassVar[str]
    version: ClassVar[int] = 2
    transfer_format: ClassVar[TransferFormat]

    def __init__(self) -> None:
        self._decoders: dict[Any, Any] = {}

    # -- reading ------------------------------------------------------------------------------------------
    def reader(self, max_message_size: int | None) -> MessageReader:
        raise NotImplementedError

    def decode_value(self, raw: msgspec.Raw, type_: Any) -> Any:
        """One argument, stream item or result, decoded into ``type_`` (a msgspec-supported annotation)."""
        raise NotImplementedError

    # -- writing (each returns one complete, framed message) ------------------------------------------------
    def invocation(
        self, target: str, args: Sequence[Any], invocation_id: str | None = None
    ) -> bytes:
        raise NotImplementedError

    def completion(
        self, invocation_id: str, *, result: Any = VOID, error: str | None = None
    ) -> bytes:
        raise NotImplementedError

    def stream_item(self, invocation_id: str, item: Any) -> bytes:
        raise NotImplementedError

    def ping(self) -> bytes:
        raise NotImplementedError

    def close(self, error: str | None, allow_reconnect: bool) -> bytes:
        raise NotImplementedError


class MessageReader:
    """Per-connection parser: bytes in, complete `HubMessage` objects out."""

    def feed(self, data: bytes) -> list[HubMessage]:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------------
# JSON


class _JsonIn(msgspec.Struct):
    # Names as on the wire (camelCase); every field but ``type`` optional; unknown keys (``headers``) ignored.
    type: int
    invocationId: str | None = None
    target: str | None = None
    arguments: list[msgspec.Raw] | None = None
    streamIds: list[str] | None = None
    item: msgspec.Raw = EMPTY_RAW
    result: msgspec.Raw = EMPTY_RAW
    error: str | None = None
    allowReconnect: bool = False
    sequenceId: int | None = None


class _JsonInvocationOut(msgspec.Struct, omit_defaults=True):
    type: int
    target: str
    arguments: Sequence[Any]
    invocationId: str | None = None


class _JsonCompletionOut(msgspec.Struct, omit_defaults=True):
    type: int
    invocationId: str
    result: Any = msgspec.UNSET
    error: str | None = None


class _JsonStreamItemOut(msgspec.Struct):
    type: int
    invocationId: str
    item: Any


class _JsonCloseOut(msgspec.Struct, omit_defaults=True):
    type: int
    error: str | None = None
    allowReconnect: bool = False


_JSON_IN = msgspec.json.Decoder(_JsonIn)


def _require(value: str | None, field: str, kind: str) -> str:
    if value is None or value == "":
        raise ProtocolError(f"Missing required property '{field}'. Message content: {kind}")
    return value


def _json_message(data: bytes) -> HubMessage | None:
    try:
        msg = _JSON_IN.decode(data)
    except msgspec.ValidationError as exc:
        if "missing required field `type`" in str(exc):
            raise ProtocolError("Missing required property 'type'.") from exc
        raise ProtocolError(f"Error reading JSON. {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"Error reading JSON. {exc}") from exc
    kind = msg.type
    if kind == 1 or kind == 4:
        streaming = kind == 4
        target = _require(msg.target, "target", "Invocation")
        invocation_id = msg.invocationId or None
        if streaming and invocation_id is None:
            raise ProtocolError("Missing required property 'invocationId'.")
        if msg.arguments is None:
            raise ProtocolError("Missing required property 'arguments'.")
        return Invocation(invocation_id, target, msg.arguments, msg.streamIds or [], streaming)
    if kind == 6:
        return PING
    if kind == 2:
        if not msg.item:
            raise ProtocolError("Missing required property 'item'.")
        return StreamItem(_require(msg.invocationId, "invocationId", "StreamItem"), msg.item)
    if kind == 3:
        return Completion(
            _require(msg.invocationId, "invocationId", "Completion"), msg.error, msg.result
        )
    if kind == 5:
        return CancelInvocation(_require(msg.invocationId, "invocationId", "CancelInvocation"))
    if kind == 7:
        return Close(msg.error, msg.allowReconnect)
    if kind == 8 or kind == 9:
        if msg.sequenceId is None:
            raise ProtocolError("Missing required property 'sequenceId'.")
        return Ack(msg.sequenceId) if kind == 8 else SequenceMessage(msg.sequenceId)
    # ASP.NET ignores message types it does not know (newer clients may send them)
    return None


class _JsonReader(MessageReader):
    __slots__ = ("_text",)

    def __init__(self, max_message_size: int | None) -> None:
        self._text = TextReader(max_message_size)

    def feed(self, data: bytes) -> list[HubMessage]:
        out: list[HubMessage] = []
        for record in self._text.feed(data):
            msg = _json_message(record)
            if msg is not None:
                out.append(msg)
        return out


class JsonHubProtocol(HubProtocol):
    """``{"protocol":"json"}``: UTF-8 JSON objects, each followed by RS; sent in WebSocket Text frames."""

    name = "json"
    transfer_format = TransferFormat.TEXT

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()
        self._ping = b'{"type":6}' + RS

    def reader(self, max_message_size: int | None) -> MessageReader:
        return _JsonReader(max_message_size)

    def decode_value(self, raw: msgspec.Raw, type_: Any) -> Any:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.json.Decoder(type_)
        return decoder.decode(raw)

    def _encode(self, obj: Any) -> bytes:
        buf = bytearray()
        self._encoder.encode_into(obj, buf)
        buf += RS
        return bytes(buf)

    def invocation(
        self, target: str, args: Sequence[Any], invocation_id: str | None = None
    ) -> bytes:
        return self._encode(_JsonInvocationOut(1, target, args, invocation_id))

    def completion(
        self, invocation_id: str, *, result: Any = VOID, error: str | None = None
    ) -> bytes:
        if error is not None:
            return self._encode(_JsonCompletionOut(3, invocation_id, error=error))
        if result is VOID:
            return self._encode(_JsonCompletionOut(3, invocation_id))
        return self._encode(_JsonCompletionOut(3, invocation_id, result=result))

    def stream_item(self, invocation_id: str, item: Any) -> bytes:
        return self._encode(_JsonStreamItemOut(2, invocation_id, item))

    def ping(self) -> bytes:
        return self._ping

    def close(self, error: str | None, allow_reconnect: bool) -> bytes:
        return self._encode(_JsonCloseOut(7, error, allow_reconnect))


# ---------------------------------------------------------------------------------------------------------
# MessagePack

_RAW_LIST = msgspec.msgpack.Decoder(list[msgspec.Raw])
_INT = msgspec.msgpack.Decoder(int)
_OPT_STR = msgspec.msgpack.Decoder(str | None)
_STR = msgspec.msgpack.Decoder(str)
_STR_LIST = msgspec.msgpack.Decoder(list[str])
_BOOL = msgspec.msgpack.Decoder(bool)
_HEADERS = msgspec.msgpack.Decoder(dict[str, str])


def _msgpack_message(body: bytes) -> HubMessage | None:
    try:
        parts = _RAW_LIST.decode(body)
        if not parts:
            raise ProtocolError("Invalid payload: the message is an empty array.")
        kind = _INT.decode(parts[0])
        n = len(parts)
        if kind == 1 or kind == 4:
            if n < 5:
                raise ProtocolError("Invalid payload for Invocation message.")
            _HEADERS.decode(parts[1])
            invocation_id = _OPT_STR.decode(parts[2]) or None
            if kind == 4 and invocation_id is None:
                raise ProtocolError("Invalid payload: a StreamInvocation needs an invocation id.")
            target = _STR.decode(parts[3])
            arguments = _RAW_LIST.decode(parts[4])
            stream_ids = _STR_LIST.decode(parts[5]) if n > 5 else []
            return Invocation(invocation_id, target, arguments, stream_ids, kind == 4)
        if kind == 6:
            return PING
        if kind == 2:
            if n < 4:
                raise ProtocolError("Invalid payload for StreamItem message.")
            return StreamItem(_STR.decode(parts[2]), parts[3])
        if kind == 3:
            if n < 4:
                raise ProtocolError("Invalid payload for Completion message.")
            invocation_id = _STR.decode(parts[2])
            result_kind = _INT.decode(parts[3])
            if result_kind == 1:
                return Completion(invocation_id, _STR.decode(parts[4]), EMPTY_RAW)
            if result_kind == 2:
                return Completion(invocation_id, None, EMPTY_RAW)
            if result_kind == 3 and n > 4:
                return Completion(invocation_id, None, parts[4])
            raise ProtocolError("Invalid invocation result kind.")
        if kind == 5:
            return CancelInvocation(_STR.decode(parts[2]))
        if kind == 7:
            error = _OPT_STR.decode(parts[1]) if n > 1 else None
            allow = _BOOL.decode(parts[2]) if n > 2 else False
            return Close(error, allow)
        if kind == 8:
            return Ack(_INT.decode(parts[1]))
        if kind == 9:
            return SequenceMessage(_INT.decode(parts[1]))
        return None
    except (msgspec.DecodeError, IndexError) as exc:
        raise ProtocolError(f"Error reading MessagePack. {exc}") from exc


class _MsgpackReader(MessageReader):
    __slots__ = ("_binary",)

    def __init__(self, max_message_size: int | None) -> None:
        self._binary = BinaryReader(max_message_size)

    def feed(self, data: bytes) -> list[HubMessage]:
        out: list[HubMessage] = []
        for body in self._binary.feed(data):
            msg = _msgpack_message(body)
            if msg is not None:
                out.append(msg)
        return out


_EMPTY_HEADERS: dict[str, str] = {}
_NO_STREAMS: list[str] = []


class MessagePackHubProtocol(HubProtocol):
    """``{"protocol":"messagepack"}``: VarInt-framed MessagePack arrays in WebSocket Binary frames."""

    name = "messagepack"
    transfer_format = TransferFormat.BINARY

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.msgpack.Encoder()
        self._ping = frame_binary(self._encoder.encode([6]))

    def reader(self, max_message_size: int | None) -> MessageReader:
        return _MsgpackReader(max_message_size)

    def decode_value(self, raw: msgspec.Raw, type_: Any) -> Any:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_)
        return decoder.decode(raw)

    def _encode(self, obj: Any) -> bytes:
        return frame_binary(self._encoder.encode(obj))

    def invocation(
        self, target: str, args: Sequence[Any], invocation_id: str | None = None
    ) -> bytes:
        # always six elements: signalrcore reads the stream-ids slot of every Invocation
        return self._encode([1, _EMPTY_HEADERS, invocation_id, target, args, _NO_STREAMS])

    def completion(
        self, invocation_id: str, *, result: Any = VOID, error: str | None = None
    ) -> bytes:
        if error is not None:
            return self._encode([3, _EMPTY_HEADERS, invocation_id, 1, error])
        if result is VOID:
            return self._encode([3, _EMPTY_HEADERS, invocation_id, 2])
        return self._encode([3, _EMPTY_HEADERS, invocation_id, 3, result])

    def stream_item(self, invocation_id: str, item: Any) -> bytes:
        return self._encode([2, _EMPTY_HEADERS, invocation_id, item])

    def ping(self) -> bytes:
        return self._ping

    def close(self, error: str | None, allow_reconnect: bool) -> bytes:
        return self._encode([7, error, allow_reconnect])


# ---------------------------------------------------------------------------------------------------------
# Handshake


class _HandshakeRequest(msgspec.Struct):
    protocol: str
    version: int


_HANDSHAKE = msgspec.json.Decoder(_HandshakeRequest)
HANDSHAKE_OK = b"{}" + RS


def handshake_error(message: str) -> bytes:
    return msgspec.json.encode({"error": message}) + RS


def parse_handshake(
    record: bytes, protocols: dict[str, HubProtocol], formats: frozenset[TransferFormat]
) -> HubProtocol:
    """The protocol a handshake request asks for; `ProtocolError` carries the ASP.NET reply text."""
    try:
        request = _HANDSHAKE.decode(record)
    except msgspec.DecodeError as exc:
        raise ProtocolError("An unexpected error occurred during connection handshake.") from exc
    protocol = protocols.get(request.protocol.lower())
    if protocol is None:
        raise ProtocolError(f"The protocol '{request.protocol}' is not supported.")
    if request.version > protocol.version:
        raise ProtocolError(
            f"The server does not support version {request.version} of the "
            f"'{request.protocol}' protocol."
        )
    if protocol.transfer_format not in formats:
        raise ProtocolError(
            f"Cannot use the '{request.protocol}' protocol on the current transport. The transport "
            f"does not support '{protocol.transfer_format.value}' transfer format."
        )
    return protocol
