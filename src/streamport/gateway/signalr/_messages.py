"""Hub messages as the server sees them after parsing, whatever the hub protocol.

Arguments, stream items and results stay undecoded (`msgspec.Raw`) until the target method is known:
the protocol then decodes each one straight into the parameter's annotated type.
"""

from __future__ import annotations

import msgspec

EMPTY_RAW = msgspec.Raw(b"")


class Invocation(msgspec.Struct):
    """Type 1 (``streaming=False``) or type 4 StreamInvocation. No id = fire and forget."""

    invocation_id: str | None
    target: str
    arguments: list[msgspec.Raw]
    stream_ids: list[str]
    streaming: bool = False


class StreamItem(msgspec.Struct):
    invocation_id: str
    item: msgspec.Raw


class Completion(msgspec.Struct):
    """``result`` is `EMPTY_RAW` for a void completion; ``error`` wins when set."""

    invocation_id: str
    error: str | None
    result: msgspec.Raw


class CancelInvocation(msgspec.Struct):
    invocation_id: str


class Ping(msgspec.Struct):
    pass


class Close(msgspec.Struct):
    error: str | None
    allow_reconnect: bool


class Ack(msgspec.Struct):
    sequence_id: int


class Sequence(msgspec.Struct):
    sequence_id: int


HubMessage = Invocation | StreamItem | Completion | CancelInvocation | Ping | Close | Ack | Sequence

PING = Ping()
