"""Redis destination (redis-py's asyncio client): records into streams or keys.

``mode: stream`` appends each record to a Redis stream (``XADD``) named by a template
(``{topic}``, ``{key}``), with the fields ``key``, ``value``, ``topic``, ``partition``,
``offset`` and ``timestamp``; ``maxlen`` trims the stream approximately.
``mode: key`` sets a key per record (``SET``, ``ttl`` optional) named by the template, holding
the value: the last record of a key wins.

One pipeline per batch (one round trip); ``write()`` returns once Redis answered it.
At-least-once: after a crash, a stream may get records of the last batch twice (their
``partition``/``offset`` fields tell them apart); keys are idempotent.

Example (YAML)::

    connector: redis-destination
    input_topic: cars
    redis_url: redis://cache:6379/0
    mode: key
    key: "car:{key}"
"""

from __future__ import annotations

import contextlib
import enum
from typing import TYPE_CHECKING, Literal

import msgspec
import redis.asyncio as aioredis
from pydantic import Field, SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamport.connectors.base import Destination, SinkRecord, convert
from streamport.connectors.config import DestinationConfig
from streamport.errors import ConnectorError, RecordRejected

if TYPE_CHECKING:
    # What redis-py accepts as a stream field name or value.
    _Field = bytes | bytearray | memoryview[int] | str | int | float


class _ClientState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    CLOSED = "closed"


class RedisDestinationConfig(DestinationConfig):
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="redis:// or rediss:// URL (may hold a password)",
    )
    mode: Literal["stream", "key"] = Field(
        default="stream", description="stream: XADD to a stream; key: SET a key per record"
    )
    key: str = Field(
        default="{topic}",
        description="stream name or key: {topic} = input topic, {key} = record key",
    )
    payload: Literal["value", "json"] = Field(
        default="value",
        description="value: the record bytes; json: the record as JSON (Quix stream messages in "
        "the Reader API shape)",
    )
    maxlen: int | None = Field(
        default=None, ge=1, description="trim streams to about this many entries"
    )
    ttl: float | None = Field(default=None, gt=0, description="key expiry, seconds (mode: key)")


class RedisDestination(Destination[RedisDestinationConfig]):
    """A streamport topic → Redis streams or keys."""

    name = "redis-destination"
    summary = "write records to Redis streams (XADD) or keys (SET)"
    config_class = RedisDestinationConfig

    def __init__(self, config: RedisDestinationConfig) -> None:
        super().__init__(config)
        self._client: aioredis.Redis | None = None
        self._client_state = _ClientState.DISCONNECTED

    async def setup(self) -> None:
        client = aioredis.Redis.from_url(
            self.config.redis_url.get_secret_value(),
            socket_timeout=30,
            socket_connect_timeout=10,
        )
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise _translate(exc, "connect") from exc
        self._client = client
        self._client_state = _ClientState.CONNECTED

    def _entry(self, record: SinkRecord) -> tuple[str, bytes]:
        key = record.key.decode(errors="replace") if record.key else ""
        name = self.config.key.format(topic=record.topic, key=key)
        if not name:
            raise RecordRejected(f"the key template {self.config.key!r} gave an empty name", record)
        if self.config.payload == "json":
            return name, msgspec.json.encode(record.payload())
        return name, record.value

    async def write(self, batch: list[SinkRecord]) -> None:
        entries: list[tuple[str, bytes]] = convert(batch, self._entry)
        client = self._client
        if client is None:
            raise ConnectorError("RedisDestination.write() before setup()")
        pipe = client.pipeline(transaction=False)
        for record, (name, value) in zip(batch, entries, strict=True):
            if self.config.mode == "stream":
                fields: dict[_Field, _Field] = {
                    "key": record.key or b"",
                    "value": value,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "timestamp": record.timestamp_ms,
                }
                pipe.xadd(name, fields, maxlen=self.config.maxlen, approximate=True)
            elif self.config.ttl is not None:
                pipe.set(name, value, px=int(self.config.ttl * 1000))
            else:
                pipe.set(name, value)
        try:
            results = await pipe.execute(raise_on_error=False)
        except RedisError as exc:
            raise _translate(exc, "write") from exc
        for record, result in zip(batch, results, strict=True):
            if isinstance(result, RedisError):
                if _retriable(result):
                    raise _translate(result, "write") from result
                # e.g. WRONGTYPE: the name holds another kind of value. Writes are idempotent
                # enough (keys) or tolerated twice (streams) to reject just this record.
                raise RecordRejected(f"Redis refused the record: {result}", record) from result

    async def close(self) -> None:
        client, self._client = self._client, None
        self._client_state = _ClientState.CLOSED
        if client is not None:
            with contextlib.suppress(RedisError):
                await client.aclose()


def _retriable(exc: RedisError) -> bool:
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def _translate(exc: RedisError, what: str) -> ConnectorError:
    return ConnectorError(f"Redis {what} failed: {exc}", retriable=_retriable(exc))
