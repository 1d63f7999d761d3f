"""The seam under the SDK: produce with acknowledgements, subscribe with consumer groups.

Two implementations: `KafkaTransport` (Apache Kafka through ``streamport.broker.kafka``) and
``streamport.client._native.NativeTransport`` (the gateway's WebSocket protocol). Everything
above this seam (streams, buffers, callbacks, commits) is shared by both clients.

`KafkaTransport` also produces *directly* (``produce_now``): the pushing thread hands a record to
librdkafka's queue (a non-blocking C call) and the delivery report comes back on the transport's
poll thread, so a record never waits for the client's loop (see ``_sender.DirectSender``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from confluent_kafka import KafkaError, Message, Producer

from streamport.broker import ConsumedRecord, OffsetReset, Record, TopicConfig, TopicPartition
from streamport.broker.kafka import DEFAULT_MAX_RECORD_BYTES, KafkaBroker, KafkaConsumer

# The Kafka backend's one boundary for librdkafka errors and its client settings, reused so the
# SDK's direct producer translates and connects exactly as the broker does.
from streamport.broker.kafka._broker import (
    DEFAULT_PRODUCE_TIMEOUT,
    client_settings,
    produce_record,
)
from streamport.broker.kafka._errors import translate
from streamport.errors import RecordTooLarge, StreamportError, TopicExists, UnknownTopic

log = logging.getLogger("streamport.client")

DeliveryCallback = Callable[[KafkaError | None, Message], None]
POLL_SECONDS = 0.1  # the poll thread's wait for delivery reports (it stops within this)

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
        # The producer settings of the Kafka backend (KafkaBroker.start), for the direct path.
        self._producer_settings: dict[str, Any] = {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.timeout.ms": int(DEFAULT_PRODUCE_TIMEOUT * 1000),
            # The bounds of what waits for Kafka (a full queue makes produce_now raise BufferError).
            "queue.buffering.max.messages": 100_000,
            "queue.buffering.max.kbytes": 64 * 1024,
            "message.max.bytes": DEFAULT_MAX_RECORD_BYTES + 1024,
            # No report (no Python call, no GIL taken) per delivered record; see DirectSender.
            "delivery.report.only.error": True,
            **client_settings(broker_address, client_config),
            "error_cb": self._on_client_error,
        }
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()

    async def start(self) -> None:
        await self._broker.start()
        self._producer = Producer(self._producer_settings)
        self._poller = threading.Thread(
            target=self._poll, name="streamport-sdk-deliveries", daemon=True
        )
        self._poller.start()

    def _poll(self) -> None:
        """The poll thread: serves delivery reports (their callbacks run here)."""
        producer = self._producer
        assert producer is not None
        while not self._stop_polling.is_set():
            producer.poll(POLL_SECONDS)

    def _on_client_error(self, error: KafkaError) -> None:
        # librdkafka recovers from client-level errors itself; records that cannot be delivered
        # fail through their delivery reports.
        log.warning("Kafka client error: %s", error.str())

    async def aclose(self) -> None:
        if self._producer is not None:
            # Deliver what is in flight (bounded by message.timeout.ms), then stop polling.
            await asyncio.to_thread(self._producer.flush, DEFAULT_PRODUCE_TIMEOUT)
        self._stop_polling.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        await self._broker.aclose()

    def produce_now(self, topic: str, record: Record, on_delivery: DeliveryCallback) -> None:
        """Queue `record` in librdkafka (non-blocking, any thread); `on_delivery` runs (on the
        thread that polls or flushes) if it fails. Raises BufferError when the queue is full,
        a StreamportError when the record is refused at once (the topic must exist: `ensure`).
        """
        producer = self._producer
        if producer is None:
            raise StreamportError("the Kafka transport is not started")
        size = len(record.value) + len(record.key or b"")
        if record.headers:
            size += sum(len(name) + len(value) for name, value in record.headers)
        if size > DEFAULT_MAX_RECORD_BYTES:
            raise RecordTooLarge(
                f"a record of {size} bytes is over the limit of {DEFAULT_MAX_RECORD_BYTES} "
                "bytes: publish smaller packets (buffer.packet_size)",
                field="record",
            )
        produce_record(producer, topic, record, on_delivery)

    def flush(self, timeout: float | None) -> int:
        """Wait (blocking, GIL released) until every queued record is delivered or failed;
        the number still waiting (0 unless `timeout` passed)."""
        producer = self._producer
        if producer is None:
            return 0
        return int(producer.flush(-1 if timeout is None else timeout))

    @staticmethod
    def delivery_error(error: KafkaError, topic: str) -> StreamportError:
        return translate(error, topic=topic)

    async def ensure(self, topic: str) -> None:
        """Create `topic` (one partition) unless it exists; remembered once done."""
        await self._ensure(topic)

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
