"""`KafkaBroker`: the broker seam on Apache Kafka through confluent-kafka (librdkafka)."""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition

# confluent_kafka.admin re-exports these without listing them in `__all__`.
from confluent_kafka.admin import (  # type: ignore[attr-defined, unused-ignore]
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from streamport.broker.base import (
    OffsetReset,
    Record,
    RecordMetadata,
    TopicConfig,
    TopicInfo,
    Watermarks,
    validate_topic_name,
)
from streamport.broker.kafka._consumer import KafkaConsumer
from streamport.broker.kafka._door import Door
from streamport.broker.kafka._errors import translate, translated
from streamport.errors import (
    BrokerClosed,
    RecordTooLarge,
    StreamportError,
    ValidationError,
)

log = logging.getLogger("streamport.broker.kafka")

# librdkafka's own default for message.max.bytes; a record (key + value + headers) over it fails.
DEFAULT_MAX_RECORD_BYTES = 1_000_000
# How long a record may wait for Kafka's acknowledgement before produce() raises
# BrokerUnavailable (librdkafka's message.timeout.ms). Short, so a writer behind an HTTP request
# gets a 503 during an outage within seconds instead of a hanging request.
DEFAULT_PRODUCE_TIMEOUT = 10.0
# Records waiting in librdkafka's queue for delivery. When it is full, produce() waits for
# deliveries to free space (backpressure), it never drops.
_QUEUE_MESSAGES = 200_000


# (future to settle, topic, error or None, partition, offset) for one delivered record.
_Report = tuple["asyncio.Future[RecordMetadata]", str, "KafkaError | None", int, int]


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


def client_settings(bootstrap_servers: str, client_config: Mapping[str, str]) -> dict[str, Any]:
    """The librdkafka settings every client of a broker shares; `client_config` wins."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "client.id": "streamport",
        "logger": log,
        **client_config,
    }


def produce_record(
    producer: Producer,
    topic: str,
    record: Record,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    """Queue `record` in librdkafka (non-blocking: it only queues, or raises BufferError when its
    queue is full); errors librdkafka raises at once become StreamportErrors."""
    with translated(topic=topic):
        producer.produce(
            topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers) or None,
            partition=-1 if record.partition is None else record.partition,
            timestamp=record.timestamp_ms or 0,
            on_delivery=on_delivery,
        )


def placement(error: KafkaError | None, message: Message) -> tuple[int, int]:
    """Where a delivery report says the record went: (partition, offset), -1 for what it does
    not say. A delivered record can come back without an offset: when an idempotent producer
    retries a batch the broker already wrote (a timeout or a leader change in between), the broker
    answers "duplicate" without the offset; the record is durable in its partition all the same
    (Kafka's Java client reports offset -1 then too)."""
    if error is not None:
        return -1, -1
    partition, offset = message.partition(), message.offset()
    return (
        -1 if partition is None else partition,
        -1 if offset is None or offset < 0 else offset,
    )


class KafkaBroker:
    """The `Broker` seam on an Apache Kafka cluster.

    ``client_config`` passes librdkafka properties through, e.g. for SASL over TLS::

        broker = KafkaBroker(
            "kafka-1:9093",
            client_config={
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "streamport",
                "sasl.password": secret.get_secret_value(),
            },
        )
        async with broker:
            await broker.produce("events", [Record(b"{}", key=b"stream-1")])
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_config: Mapping[str, str] | None = None,
        request_timeout: float = 30.0,
        produce_timeout: float = DEFAULT_PRODUCE_TIMEOUT,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        if produce_timeout <= 0:
            raise ValidationError(
                f"produce_timeout must be positive, got {produce_timeout}", field="produce_timeout"
            )
        self._settings = client_settings(bootstrap_servers, client_config or {})
        self._request_timeout = request_timeout
        self._produce_timeout = produce_timeout
        self._max_record_bytes = max_record_bytes
        self._state = _State.NEW
        self._door = Door("streamport-kafka")
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        # Delivery reports collected by the poll thread and handed to the loop once per poll.
        self._reports: list[_Report] = []
        self._reports_lock = threading.Lock()
        self._space = asyncio.Event()
        self._partitions: dict[str, int] = {}
        self._consumers: set[KafkaConsumer] = set()
        self._auth_error: KafkaError | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._state is not _State.NEW:
            return
        self._loop = asyncio.get_running_loop()
        producer_settings = {
            "enable.idempotence": True,
            "acks": "all",
            # Kafka's Java clients hash keys with murmur2; librdkafka's default is crc32.
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.timeout.ms": int(self._produce_timeout * 1000),
            "queue.buffering.max.messages": _QUEUE_MESSAGES,
            "message.max.bytes": max(self._max_record_bytes + 1024, 1_000_000),
            **self._settings,
        }
        self._admin = AdminClient(self._settings)
        self._producer = Producer({**producer_settings, "error_cb": self._on_client_error})
        producer = self._producer
        self._poller = threading.Thread(
            target=self._poll_deliveries, name="streamport-kafka-deliveries", daemon=True
        )
        self._poller.start()
        self._state = _State.OPEN
        # Fail fast (and retriably) when the cluster cannot be reached.
        try:
            await self._door.call(lambda: producer.list_topics(timeout=self._request_timeout))
        except BaseException as exc:
            await self.aclose()
            if self._auth_error is not None and isinstance(exc, StreamportError):
                # librdkafka reports refused credentials only as a log/error event and then
                # the metadata request times out; name the real cause.
                raise translate(self._auth_error) from exc
            raise

    def _on_client_error(self, error: KafkaError) -> None:
        # Runs on the poll thread. librdkafka recovers from most client-level errors by itself;
        # the last refused-credentials error is kept to explain a failed start().
        if error.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            self._auth_error = error
        log.warning("Kafka client error: %s", error.str())

    async def aclose(self) -> None:
        if self._state is _State.CLOSED:
            return
        was_open = self._state is _State.OPEN
        self._state = _State.CLOSED
        for consumer in list(self._consumers):
            await consumer.aclose()
        if was_open and self._producer is not None and self._auth_error is None:
            producer = self._producer
            # Deliver what is in flight (bounded by message.timeout.ms), then stop polling.
            await asyncio.to_thread(producer.flush, self._request_timeout)
        self._stop_polling.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        self._hand_over_reports()
        await self._door.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _open(self) -> tuple[AdminClient, Producer]:
        if self._state is not _State.OPEN or self._admin is None or self._producer is None:
            raise BrokerClosed(
                "the Kafka broker is closed"
                if self._state is _State.CLOSED
                else "call start() first"
            )
        return self._admin, self._producer

    # -- topics ----------------------------------------------------------------------------

    async def create_topic(self, name: str, config: TopicConfig | None = None) -> TopicInfo:
        admin, _ = self._open()
        validate_topic_name(name)
        config = config or TopicConfig()
        if config.partitions < 1:
            raise ValidationError(
                f"partitions must be at least 1, got {config.partitions}", field="partitions"
            )
        new = NewTopic(
            name,
            num_partitions=config.partitions,
            replication_factor=-1,
            config={
                "retention.ms": str(config.retention_ms),
                "retention.bytes": str(config.retention_bytes),
            },
        )

        def create() -> None:
            admin.create_topics([new], request_timeout=self._request_timeout)[name].result()
            self._await_metadata(admin, name, present=True)

        await self._door.call(create, topic=name)
        self._partitions[name] = config.partitions
        return TopicInfo(
            name=name,
            partitions=config.partitions,
            retention_ms=config.retention_ms,
            retention_bytes=config.retention_bytes,
        )

    def _await_metadata(self, admin: AdminClient, name: str, *, present: bool) -> None:
        """Wait (in the door) until metadata shows the topic with leaders, or shows it gone."""
        deadline = time.monotonic() + self._request_timeout
        while True:
            topic = admin.list_topics(topic=name, timeout=self._request_timeout).topics.get(name)
            exists = topic is not None and topic.error is None
            if (
                present
                and topic is not None
                and topic.error is None
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return
            if not present and not exists:
                return
            if time.monotonic() > deadline:
                state = "appear" if present else "disappear"
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"topic did not {state}"))
            time.sleep(0.02)

    async def list_topics(self) -> list[TopicInfo]:
        admin, _ = self._open()

        def names() -> dict[str, int]:
            metadata = admin.list_topics(timeout=self._request_timeout)
            return {
                name: len(topic.partitions)
                for name, topic in metadata.topics.items()
                if topic.error is None and not name.startswith("__")
            }

        partitions = await self._door.call(names)
        return await self._with_configs(admin, partitions)

    async def describe_topic(self, name: str) -> TopicInfo:
        admin, _ = self._open()
        partitions = await self._partition_count(name, refresh=True)
        (info,) = await self._with_configs(admin, {name: partitions})
        return info

    async def _with_configs(
        self, admin: AdminClient, partitions: dict[str, int]
    ) -> list[TopicInfo]:
        if not partitions:
            return []
        resources = [ConfigResource("topic", name) for name in sorted(partitions)]

        def describe() -> list[TopicInfo]:
            futures = admin.describe_configs(resources, request_timeout=self._request_timeout)
            infos = []
            for resource, future in futures.items():
                entries = future.result()
                infos.append(
                    TopicInfo(
                        name=resource.name,
                        partitions=partitions[resource.name],
                        retention_ms=int(entries["retention.ms"].value),
                        retention_bytes=int(entries["retention.bytes"].value),
                    )
                )
            return sorted(infos, key=lambda info: info.name)

        return await self._door.call(describe, topic=resources[0].name)

    async def delete_topic(self, name: str) -> None:
        admin, _ = self._open()
        validate_topic_name(name)

        def delete() -> None:
            admin.delete_topics([name], request_timeout=self._request_timeout)[name].result()
            self._await_metadata(admin, name, present=False)

        self._partitions.pop(name, None)
        await self._door.call(delete, topic=name)

    async def _partition_count(self, topic: str, *, refresh: bool = False) -> int:
        if not refresh and topic in self._partitions:
            return self._partitions[topic]
        admin, _ = self._open()
        validate_topic_name(topic)

        def count() -> int:
            metadata = admin.list_topics(topic=topic, timeout=self._request_timeout)
            found = metadata.topics.get(topic)
            if found is None:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
            if found.error is not None:
                raise KafkaException(found.error)
            return len(found.partitions)

        partitions = await self._door.call(count, topic=topic)
        self._partitions[topic] = partitions
        return partitions

    # -- produce ---------------------------------------------------------------------------

    async def produce(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        _, producer = self._open()
        partitions = await self._partition_count(topic)
        for index, record in enumerate(records):
            size = len(record.value) + len(record.key or b"")
            size += sum(len(name) + len(value) for name, value in record.headers)
            if size > self._max_record_bytes:
                raise RecordTooLarge(
                    f"records[{index}] is {size} bytes, over the limit of "
                    f"{self._max_record_bytes} bytes; split it or raise max_record_bytes",
                    field=f"records[{index}]",
                )
            if record.partition is not None and not 0 <= record.partition < partitions:
                raise ValidationError(
                    f"records[{index}] names partition {record.partition} but topic {topic!r} "
                    f"has partitions 0 to {partitions - 1}",
                    field=f"records[{index}].partition",
                )
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[RecordMetadata]] = []
        for record in records:
            future: asyncio.Future[RecordMetadata] = loop.create_future()
            await self._enqueue(producer, topic, record, future)
            futures.append(future)
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [result for result in results if isinstance(result, RecordMetadata)]

    async def _enqueue(
        self,
        producer: Producer,
        topic: str,
        record: Record,
        future: asyncio.Future[RecordMetadata],
    ) -> None:
        def report(error: KafkaError | None, message: Message) -> None:
            # Runs on the poll thread; handed to the loop in batches (see _poll_deliveries).
            partition, offset = placement(error, message)
            with self._reports_lock:
                self._reports.append((future, topic, error, partition, offset))

        while True:
            try:
                produce_record(producer, topic, record, report)
                return
            except BufferError:
                # The local queue is full: wait until deliveries free space, then retry.
                self._space.clear()
                await self._space.wait()
                self._open()

    def _poll_deliveries(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stop_polling.is_set():
            producer.poll(0.05)
            self._hand_over_reports()

    def _hand_over_reports(self) -> None:
        with self._reports_lock:
            reports, self._reports = self._reports, []
        if reports and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._settle, reports)

    def _settle(self, reports: list[_Report]) -> None:
        for future, topic, error, partition, offset in reports:
            if future.done():
                continue
            if error is None:
                future.set_result(RecordMetadata(partition, offset))
            else:
                future.set_exception(translate(error, topic=topic))
        self._space.set()

    # -- offsets ---------------------------------------------------------------------------

    async def watermarks(self, topic: str) -> list[Watermarks]:
        admin, _ = self._open()
        partitions = await self._partition_count(topic)
        tps = [KafkaTopicPartition(topic, p) for p in range(partitions)]

        def query() -> list[Watermarks]:
            timeout = self._request_timeout
            earliest: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call, unused-ignore]
            latest: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call, unused-ignore]
            low = admin.list_offsets({tp: earliest for tp in tps}, request_timeout=timeout)
            high = admin.list_offsets({tp: latest for tp in tps}, request_timeout=timeout)
            lows = {tp.partition: f.result().offset for tp, f in low.items()}
            highs = {tp.partition: f.result().offset for tp, f in high.items()}
            return [Watermarks(lows[p], highs[p]) for p in range(partitions)]

        return await self._door.call(query, topic=topic)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        admin, _ = self._open()
        partitions = await self._partition_count(topic)
        request = ConsumerGroupTopicPartitions(
            group, [KafkaTopicPartition(topic, p) for p in range(partitions)]
        )

        def query() -> dict[int, int]:
            futures = admin.list_consumer_group_offsets(
                [request], request_timeout=self._request_timeout
            )
            result = futures[group].result()
            offsets = {}
            for tp in result.topic_partitions:
                if tp.error is not None:
                    raise KafkaException(tp.error)
                if tp.offset >= 0:
                    offsets[tp.partition] = tp.offset
            return offsets

        return await self._door.call(query, topic=topic)

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        marks, committed = await asyncio.gather(
            self.watermarks(topic), self.committed(group, topic)
        )
        return {p: max(0, mark.high - committed.get(p, mark.low)) for p, mark in enumerate(marks)}

    # -- consumers -------------------------------------------------------------------------

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        auto_offset_reset: OffsetReset = "latest",
    ) -> KafkaConsumer:
        self._open()
        for topic in topics:
            validate_topic_name(topic)
        if not topics:
            raise ValidationError("a consumer needs at least one topic", field="topics")
        consumer = KafkaConsumer(
            self._settings,
            list(topics),
            group=group,
            auto_offset_reset=auto_offset_reset,
            request_timeout=self._request_timeout,
            on_close=self._consumers.discard,
        )
        self._consumers.add(consumer)
        return consumer
