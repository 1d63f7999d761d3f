"""Plain records as JSON: the shape of the admin produce/consume API and of
``POST /writer/topics/{topic}/messages``.

In: ``{"key": str|null, "value": <any JSON>, "headers": {str: str}, "timestamp": <ms>}``; the value
is stored as its JSON bytes (what quixstreams' ``json`` serializer writes). Out: the same fields plus
``topic``, ``partition`` and ``offset``; a value that is not JSON comes back as a string with
``valueEncoding`` ``utf-8`` or ``base64``.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from streamport.broker import ConsumedRecord, Record
from streamport.errors import ValidationError

_encode = msgspec.json.encode
_FIELDS = {"key", "value", "headers", "timestamp"}


def parse_record(item: Any, where: str) -> Record:
    """One plain record from decoded JSON; `where` names it in errors (e.g. ``records[3]``)."""
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object with a 'value'", field=where)
    lowered = {str(k).lower(): v for k, v in item.items()}
    if "value" not in lowered:
        raise ValidationError(f"{where}.value is required", field=f"{where}.value")
    key = lowered.get("key")
    if key is not None and not isinstance(key, str):
        raise ValidationError(f"{where}.key must be a string or null", field=f"{where}.key")
    headers_in = lowered.get("headers") or {}
    if not isinstance(headers_in, dict) or not all(isinstance(v, str) for v in headers_in.values()):
        raise ValidationError(
            f"{where}.headers must be an object of strings", field=f"{where}.headers"
        )
    timestamp = lowered.get("timestamp")
    if timestamp is not None and (
        isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp < 2**63
    ):
        raise ValidationError(
            f"{where}.timestamp must be a non-negative integer (milliseconds since the Unix epoch)",
            field=f"{where}.timestamp",
        )
    return Record(
        value=_encode(lowered["value"]),
        key=key.encode() if key is not None else None,
        headers=tuple((k, v.encode()) for k, v in headers_in.items()),
        timestamp_ms=timestamp,
    )


def parse_records(payload: Any) -> list[Record]:
    """A JSON array of records (or one record object)."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ValidationError("no records given", field="records")
    return [parse_record(item, f"records[{i}]") for i, item in enumerate(items)]


def _text(data: bytes) -> tuple[Any, str | None]:
    try:
        return msgspec.json.decode(data), None
    except msgspec.DecodeError:
        pass
    try:
        return data.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), "base64"


def record_to_json(record: ConsumedRecord) -> dict[str, Any]:
    value, encoding = _text(record.value)
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
        "timestamp": record.timestamp_ms,
        "value": value,
    }
    if encoding is not None:
        out["valueEncoding"] = encoding
    if record.headers:
        out["headers"] = {k: v.decode(errors="replace") for k, v in record.headers}
    return out
