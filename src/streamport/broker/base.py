"""The broker seam: a log of records in partitioned topics, with consumer groups.

Bytes, keys and offsets only; nothing here knows about streams. Two backends implement it:
``streamport.broker.embedded`` (the default, one directory on disk) and ``streamport.broker.kafka``.
One contract suite (``tests/broker/``) runs against both.

Offsets follow Kafka's conventions: the first record of a partition has offset 0, the *high
watermark* is the offset the next record will get, and a committed offset is the offset of the
next record to read (last processed + 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple, Protocol, Self

import msgspec

from streamport.errors import InvalidTopicName

OffsetReset = Literal["earliest", "latest"]
Headers = tuple[tuple[str, bytes], ...]

DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def validate_topic_name(name: str) -> str:
    """Return `name` if Kafka would accept it as a topic name, else raise InvalidTopicName."""
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidTopicName(
            f"invalid topic name {name!r}: use 1 to 249 characters of letters, digits, '.', '_' "
            "and '-' (not '.' or '..' alone)",
            field="topic",
        )
    return name


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class TopicConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How a topic is created. ``-1`` retention means unlimited, as in Kafka."""

    partitions: int = 1
    retention_ms: int = DEFAULT_RETENTION_MS
    retention_bytes: int = -1


class TopicInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    partitions: int
    retention_ms: int
    retention_bytes: int


class Record(msgspec.Struct, frozen=True, gc=False):
    """A record to produce. ``timestamp_ms`` defaults to the time of the write; ``partition``
    defaults to murmur2(key) for keyed records, Kafka's default partitioner."""

    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None
    partition: int | None = None


class RecordMetadata(NamedTuple):
    """Where a produced record was durably written."""

    partition: int
    offset: int


class ConsumedRecord(msgspec.Struct, frozen=True, gc=False):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int


class Watermarks(NamedTuple):
    """``low`` is the first offset still retained, ``high`` the offset the next record gets."""

    low: int
    high: int


class Consumer(Protocol):
    """Reads records from the partitions assigned to it.

    With a ``group`` the consumer joins that consumer group: members share the partitions of the
    topics, reading starts at the group's committed offsets (else at ``auto_offset_reset``), and
    :meth:`commit` stores progress. Without a group it reads every partition and cannot commit.
    """

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def fetch(self, max_records: int = 1000, timeout: float = 1.0) -> list[ConsumedRecord]:
        """Return up to `max_records` records, waiting up to `timeout` seconds for the first one.

        Returns an empty list when nothing arrived in time. A waiting fetch is woken by new
        data, not by polling.
        """
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit `offsets` (next offset to read), or the current positions when None."""
        ...

    async def seek(self, tp: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, tps: Sequence[TopicPartition] | None = None) -> None: ...

    async def seek_to_end(self, tps: Sequence[TopicPartition] | None = None) -> None: ...

    async def seek_to_timestamp(
        self, timestamp_ms: int, tps: Sequence[TopicPartition] | None = None
    ) -> None:
        """Move to the first record at or after `timestamp_ms` (the end if there is none)."""
        ...

    def assignment(self) -> frozenset[TopicPartition]: ...

    async def position(self, tp: TopicPartition) -> int: ...


class Broker(Protocol):
    """A partitioned, replayable log. See the module docstring for offset conventions."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def create_topic(self, name: str, config: TopicConfig | None = None) -> TopicInfo:
        """Create a topic; raise TopicExists or InvalidTopicName."""
        ...

    async def list_topics(self) -> list[TopicInfo]: ...

    async def describe_topic(self, name: str) -> TopicInfo:
        """Raise UnknownTopic if there is no such topic."""
        ...

    async def delete_topic(self, name: str) -> None: ...

    async def produce(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        """Append `records` and return where each one went, only once they are durable.

        Raises UnknownTopic, RecordTooLarge, BrokerUnavailable (retriable).
        """
        ...

    async def watermarks(self, topic: str) -> list[Watermarks]:
        """Low and high watermark of each partition, indexed by partition."""
        ...

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offsets for the topic's partitions (absent = never committed)."""
        ...

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        """Per partition: high watermark minus committed offset (or minus low when uncommitted)."""
        ...

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        auto_offset_reset: OffsetReset = "latest",
    ) -> Consumer:
        """A consumer of `topics`; call ``start()`` or use ``async with``."""
        ...
