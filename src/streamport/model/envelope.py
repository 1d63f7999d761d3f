"""The Quix Kafka message codecs: model <-> message value (and headers).

Written form (quixstreams 3.x ``QuixSerializer(as_legacy=True)``, also read by the legacy C# and
Python SDKs)::

    {"C":"JT","K":"ParameterData","V":{"Epoch":0,"Timestamps":[...],...},"S":34,"E":120}

``S``/``E`` are the byte offsets of ``V`` in the value: ``value[S:E]`` is exactly the model JSON.

Read forms:

* that legacy JSON envelope, keys in any order, codec ``J`` or ``JT``, optional ``M`` metadata;
  ``V`` inline JSON, or a base64 string of the model JSON; with codec ``[GZIP]J``/``[GZIP]JT``
  ``V`` is the base64 of the gzip-compressed model JSON;
* the header form: headers ``__Q_ModelKey`` and ``__Q_CodecId``, value = model JSON (gzip when
  the codec has the ``[GZIP]`` prefix).

Everything else - split messages, the binary envelope (``0x01``), Protobuf or compact codecs,
unknown model keys, malformed bytes of any kind - raises :class:`~streamport.errors.CodecError`.

Example::

    value = encode(EventData(id="Alert", timestamp=1, value="Help"))
    assert decode(value) == EventData(id="Alert", timestamp=1, value="Help")
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from typing import Any

import msgspec

from streamport.errors import CodecError, ValidationError
from streamport.model.data import (
    EventData,
    StreamEnd,
    StreamEndType,
    StreamProperties,
    TimeseriesData,
)
from streamport.model.definitions import EventDefinitions, EventLevel, ParameterDefinitions
from streamport.model.message import Message, model_key

__all__ = [
    "CODEC_HEADER",
    "MAX_INFLATED_BYTES",
    "MODEL_KEY_HEADER",
    "SPLIT_HEADER",
    "decode",
    "encode",
    "encode_headers_form",
    "encode_value",
]

MODEL_KEY_HEADER = "__Q_ModelKey"
CODEC_HEADER = "__Q_CodecId"
SPLIT_HEADER = "__Q_SplitMessageId"
GZIP_PREFIX = "[GZIP]"
WRITE_CODEC = "JT"
READ_CODECS = ("J", "JT")

# A gzip bomb must not take the process down: decompressed models larger than this are refused.
MAX_INFLATED_BYTES = 64 * 1024 * 1024

HeaderPairs = Sequence[tuple[str, bytes | str]]


class _Envelope(msgspec.Struct, rename={"codec": "C", "key": "K", "value": "V"}):
    codec: str
    key: str
    value: msgspec.Raw


_encoder = msgspec.json.Encoder()
_envelope = msgspec.json.Decoder(_Envelope)
_timeseries = msgspec.json.Decoder(TimeseriesData)
_events = msgspec.json.Decoder(EventData | list[EventData])
_properties = msgspec.json.Decoder(StreamProperties)
_generic = msgspec.json.Decoder()

# Exceptions that malformed input can raise below; all become CodecError at one boundary.
_MALFORMED = (
    msgspec.DecodeError,
    ValueError,  # includes binascii.Error and UnicodeDecodeError
    TypeError,
    zlib.error,
    RecursionError,
    OverflowError,
)


def encode_value(message: Message) -> bytes:
    """The PascalCase model JSON (the ``V`` of the envelope, or the value of the header form).

    Timeseries data is written with ``Epoch`` 0 and absolute timestamps (quixstreams 3.x ignores
    ``Epoch``).
    """
    if isinstance(message, TimeseriesData):
        message = message.absolute()
    return _encoder.encode(message)


def encode(message: Message) -> bytes:
    """The legacy JSON envelope: ``{"C":"JT","K":<key>,"V":<model>,"S":<start>,"E":<end>}``."""
    value = encode_value(message)
    head = b'{"C":"JT","K":"' + model_key(message).encode() + b'","V":'
    start = len(head)
    return b'%s%s,"S":%d,"E":%d}' % (head, value, start, start + len(value))


def encode_headers_form(message: Message) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    """The header form: ``(model JSON, ((__Q_ModelKey, key), (__Q_CodecId, b"JT")))``."""
    headers = (
        (MODEL_KEY_HEADER, model_key(message).encode()),
        (CODEC_HEADER, WRITE_CODEC.encode()),
    )
    return encode_value(message), headers


def decode(value: bytes, headers: HeaderPairs = ()) -> Message:
    """Decode one message value (with its headers) into a model; else raise CodecError."""
    try:
        return _decode(value, headers)
    except CodecError:
        raise
    except _MALFORMED as exc:
        raise CodecError(f"not a valid Quix message: {exc}") from exc


def _decode(value: bytes, headers: HeaderPairs) -> Message:
    if not value:
        raise CodecError("empty message value: not a Quix message")
    first = value[:1]
    if first == b"<":
        raise CodecError(
            "split Quix message (a part of a larger message): splitting is not supported"
        )
    if first == b"\x01":
        raise CodecError(
            "binary Quix envelope (used with the Protobuf codec) is not supported: "
            "produce with the JSON codec"
        )
    found = _header_dict(headers)
    if SPLIT_HEADER in found:
        raise CodecError(f"split Quix message ({SPLIT_HEADER} header): splitting is not supported")
    if value.startswith(b'{"C":') or MODEL_KEY_HEADER not in found:
        codec, key, payload = _open_envelope(value)
    else:
        codec = found.get(CODEC_HEADER, "")
        if not codec:
            raise CodecError(f"the {CODEC_HEADER} header is missing or empty")
        key = found[MODEL_KEY_HEADER]
        payload = value
        if codec.startswith(GZIP_PREFIX):
            codec = codec[len(GZIP_PREFIX) :]
            payload = _gunzip(payload)
    if codec not in READ_CODECS:
        raise CodecError(
            f"unsupported Quix codec {codec!r}: only the JSON codecs J and JT can be read "
            "(set the producer's codec type to Json)"
        )
    return _decode_model(key, payload)


def _header_dict(headers: HeaderPairs) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, raw in headers:
        if name in (MODEL_KEY_HEADER, CODEC_HEADER, SPLIT_HEADER):
            found[name] = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
    return found


def _open_envelope(value: bytes) -> tuple[str, str, bytes]:
    if value[:1] != b"{":
        raise CodecError(
            'not a Quix message: expected the JSON envelope {"C":...,"K":...,"V":...} '
            f"or the {MODEL_KEY_HEADER}/{CODEC_HEADER} headers"
        )
    try:
        envelope = _envelope.decode(value)
    except msgspec.DecodeError as exc:
        raise CodecError(f"not a valid Quix JSON envelope: {exc}") from exc
    codec, payload = envelope.codec, bytes(envelope.value)
    gzipped = codec.startswith(GZIP_PREFIX)
    if gzipped:
        codec = codec[len(GZIP_PREFIX) :]
    if payload[:1] == b'"':
        # A value that was not JSON travels as a base64 string (always so when compressed).
        payload = base64.b64decode(_generic.decode(payload), validate=True)
    elif gzipped:
        raise CodecError("a [GZIP] codec needs V to be a base64 string of the compressed model")
    if gzipped:
        payload = _gunzip(payload)
    return codec, envelope.key, payload


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # gzip header and trailer
    try:
        out = inflater.decompress(data, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise CodecError(f"not valid gzip data: {exc}") from exc
    if inflater.unconsumed_tail:
        raise CodecError(f"gzip model larger than {MAX_INFLATED_BYTES} bytes when decompressed")
    if not inflater.eof:
        raise CodecError("truncated gzip data")
    return out


def _decode_model(key: str, payload: bytes) -> Message:
    try:
        message: Message
        if key in ("ParameterData", "TimeseriesData"):
            message = _timeseries.decode(payload)
            message.validate()
        elif key in ("EventData", "EventData[]"):
            events = _events.decode(payload)
            if isinstance(events, list):
                for index, event in enumerate(events):
                    event.validate(f"[{index}]")
            else:
                events.validate()
            message = events
        elif key == "StreamProperties":
            message = _properties.decode(payload)
        elif key == "StreamEnd":
            message = msgspec.convert(_normalize_stream_end(_generic.decode(payload)), StreamEnd)
        elif key == "ParameterDefinitions":
            message = msgspec.convert(_generic.decode(payload), ParameterDefinitions)
            message.validate()
        elif key == "EventDefinitions":
            obj = _generic.decode(payload)
            _normalize_levels(obj)
            message = msgspec.convert(obj, EventDefinitions)
            message.validate()
        else:
            raise CodecError(f"unknown Quix model key {key!r}")
    except msgspec.DecodeError as exc:
        raise CodecError(f"invalid {key} model: {exc}") from exc
    except ValidationError as exc:
        raise CodecError(f"invalid {key} model: {exc.message} (field {exc.field})") from exc
    return message


def _normalize_stream_end(obj: Any) -> Any:
    # The C# enum may be written as its number when the codec has no StringEnumConverter.
    if isinstance(obj, dict):
        end_type = obj.get("StreamEndType")
        names = [t.value for t in StreamEndType]
        if isinstance(end_type, int) and not isinstance(end_type, bool) and 0 <= end_type < 3:
            obj["StreamEndType"] = names[end_type]
    return obj


def _normalize_levels(obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    stack: list[Any] = [obj]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        for event in node.get("Events") or ():
            if isinstance(event, dict) and "Level" in event:
                event["Level"] = EventLevel.parse(event["Level"], "Level").value
        for name in ("EventGroups", "ChildGroups"):
            groups = node.get(name)
            if isinstance(groups, list):
                stack.extend(groups)
