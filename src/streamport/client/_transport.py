"""The seam under the SDK: produce with acknowledgements, subscribe with consumer groups.

Two implementations: `KafkaTransport` (Apache Kafka through ``streamport.broker.kafka``) and
``streamport.client._native.NativeTransport`` (the gateway's WebSocket protocol). Everything
above this seam (streams, buffers, callbacks, commits) is shared by both clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from streamport.broker import ConsumedRecord, OffsetReset, Record, TopicConfig, TopicPartition
from streamport.broker.kafka import KafkaBroker, KafkaConsumer
from streamport.errors import TopicExists, UnknownTopic

SeekTarget = int | Literal["beginning", "end"]


class Subscription(Protocol):
    """One topic read by one consumer (in a consumer group, or alone without a group)."""

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumedRecord]: ...

    async def commit(self, offsets: Mapping[int, int] | None = None) -> None:
        """Commit ``{partition: next offset}`` (the current positions when None)."""
        ...

    async def seek(self, offset: SeekTarget, partition: int | None = None) -> None: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def produce(self, topic: str, records: Sequence[Record]) -> None:
        """Return once every record is durable (raises a BrokerError otherwise)."""
        ...

    async def send(self, topic: str, records: Sequence[Record]) -> asyncio.Future[None]:
        """Start producing `records`; the future settles once they are durable (or failed).

        Batches of consecutive calls (each awaited before the next) keep their order; the
        caller may keep several futures waiting at once.
        """
        ...

    async def subscribe(
        self, topic: str, group: str | None, offset_reset: OffsetReset
    ) -> Subscription: ...


class _KafkaSubscription:
    def __init__(self, topic: str, consumer: KafkaConsumer) -> None:
        self._topic = topic
        self._consumer = consumer

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumedRecord]:
        return await self._consumer.fetch(max_records=max_records, timeout=timeout)

    async def commit(self, offsets: Mapping[int, int] | None = None) -> None:
        await self._consumer.commit(
            None
            if offsets is None
            else {TopicPartition(self._topic, p): o for p, o in offsets.items()}
        )

    async def seek(self, offset: SeekTarget, partition: int | None = None) -> None:
        tps = None if partition is None else [TopicPartition(self._topic, partition)]
        if offset == "beginning":
            await self._consumer.seek_to_beginning(tps)
        elif offset == "end":
            await self._consumer.seek_to_end(tps)
        else:
            targets = tps or sorted(self._consumer.assignment())
            for tp in targets:
                await self._consumer.seek(tp, offset)

    async def aclose(self) -> None:
        await self._consumer.aclose()


class KafkaTransport:
    """Kafka straight from the client; topics are created on first use (as Quix does)."""

    def __init__(
        self,
        broker_address: str,
        client_config: Mapping[str, str],
        *,
        auto_create_topics: bool = True,
    ) -> None:
        self._broker = KafkaBroker(broker_address, client_config=client_config)
        self._auto_create = auto_create_topics
        self._known: set[str] = set()

    async def start(self) -> None:
        await self._broker.start()

    async def aclose(self) -> None:
        await self._broker.aclose()

    async def _ensure(self, topic: str) -> None:
        if topic in self._known:
            return
        try:
            await self._broker.describe_topic(topic)
        except UnknownTopic:
            if not self._auto_create:
                raise
            with contextlib.suppress(TopicExists):
                await self._broker.create_topic(topic, TopicConfig(partitions=1))
        self._known.add(topic)

    async def produce(self, topic: str, records: Sequence[Record]) -> None:
        await self._ensure(topic)
        await self._broker.produce(topic, records)

    async def send(self, topic: str, records: Sequence[Record]) -> asyncio.Future[None]:
        # Waits for the acknowledgement before returning: the broker's produce() gives no
        # "queued" point to pipeline on without risking the order of two batches (librdkafka
        # batches the records of one call itself, and linger.ms keeps the wait short).
        await self.produce(topic, records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def subscribe(
        self, topic: str, group: str | None, offset_reset: OffsetReset
    ) -> Subscription:
        await self._ensure(topic)
        consumer = self._broker.consumer([topic], group=group, auto_offset_reset=offset_reset)
        assert isinstance(consumer, KafkaConsumer)
        await consumer.start()
        return _KafkaSubscription(topic, consumer)
