"""The frames of the native SDK protocol (docs/native-protocol.md), as msgspec structs.

Requests carry an ``op`` tag and a client-chosen ``id``; every reply carries the same ``id`` and a
``type`` tag (``ok`` kinds or ``error``). Binary WebSocket messages are MessagePack, text messages
JSON (``bytes`` fields are then base64 strings); replies use the format chosen with the
``format`` query parameter of the connection (``msgpack``, the default, or ``json``).

Both ends import this one module: the gateway (``gateway/native``) and the SDK (``client``) may not
import each other, and the model layer is below both. Pure shapes, no I/O.
"""

from __future__ import annotations

from typing import Literal

import msgspec

OffsetResetName = Literal["earliest", "latest"]


class WireRecord(msgspec.Struct, array_like=True, gc=False):
    """``[key, value, headers]`` of a record to produce; headers ``[[name, bytes], ...]``."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = []


class Produce(msgspec.Struct, tag="produce", tag_field="op"):
    id: int
    topic: str
    records: list[WireRecord]


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="op"):
    id: int
    topic: str
    group: str | None = None
    offset_reset: OffsetResetName = "latest"


class Fetch(msgspec.Struct, tag="fetch", tag_field="op"):
    id: int
    sub: int
    max_records: int = 1000
    timeout_ms: int = 1000


class Commit(msgspec.Struct, tag="commit", tag_field="op"):
    """``offsets``: ``[[partition, next offset], ...]``; absent = the current positions."""

    id: int
    sub: int
    offsets: list[tuple[int, int]] | None = None


class Seek(msgspec.Struct, tag="seek", tag_field="op"):
    """``offset``: a number, or ``"beginning"`` / ``"end"``; ``partition`` absent = all assigned."""

    id: int
    sub: int
    offset: int | Literal["beginning", "end"]
    partition: int | None = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="op"):
    id: int
    sub: int


Request = Produce | Subscribe | Fetch | Commit | Seek | Unsubscribe


class WireConsumed(msgspec.Struct, array_like=True, gc=False):
    """``[partition, offset, key, value, headers, timestamp_ms]`` of a fetched record."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    # A tuple: an empty one decodes as the shared empty tuple, not a new list per record.
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


class Acked(msgspec.Struct, tag="acked", tag_field="type"):
    """Produce reply: ``[partition, offset]`` of each record, in request order."""

    id: int
    offsets: list[tuple[int, int]]


class Subscribed(msgspec.Struct, tag="subscribed", tag_field="type"):
    id: int
    sub: int


class Fetched(msgspec.Struct, tag="fetched", tag_field="type"):
    id: int
    topic: str
    records: list[WireConsumed]


class Done(msgspec.Struct, tag="done", tag_field="type"):
    id: int


class Failed(msgspec.Struct, tag="error", tag_field="type"):
    """``id`` 0 = about the connection, not one request (sent before a close)."""

    id: int
    error: str
    message: str
    field: str | None = None
    retriable: bool = False


Reply = Acked | Subscribed | Fetched | Done | Failed
