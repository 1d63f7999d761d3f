"""Kafka source and destination: replicate topics from and to another Kafka cluster.

The **source** reads a topic of another cluster in a consumer group and writes each record, as
it is (value, key, headers), to the output topic; the group's offsets are committed on the other
cluster only once the records are durable in streamport: at-least-once.

The **destination** produces the records of the input topic, as they are (value, key, headers,
timestamp), to a topic of another cluster, creating it if missing; ``write()`` returns once the
cluster acknowledged them (idempotent producer, ``acks=all``).

Both use streamport's own Kafka backend (`streamport.broker.kafka`, librdkafka), so
``kafka_config`` takes the same librdkafka properties (``security.protocol``, ``sasl.*``, ...).

Example (YAML)::

    connector: kafka-source
    url: http://127.0.0.1:8080
    output_topic: orders
    source_bootstrap: kafka.other-dc:9092
    source_topic: orders
"""

from __future__ import annotations

import contextlib
import enum
from typing import TYPE_CHECKING

from pydantic import Field

from streamport.broker import Consumer, OffsetReset, Record, TopicConfig, TopicPartition
from streamport.broker.kafka import KafkaBroker
from streamport.connectors.base import Destination, SinkRecord, Source, SourceRecord
from streamport.connectors.config import DestinationConfig, SourceConfig
from streamport.connectors.retry import Stopped
from streamport.errors import BrokerError, ConnectorError, TopicExists

if TYPE_CHECKING:
    from streamport.connectors.runtime import Output


class _State(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    CLOSED = "closed"


def _translate(exc: BrokerError, what: str) -> ConnectorError:
    return ConnectorError(f"Kafka {what} failed: {exc}", retriable=exc.retriable)


class KafkaSourceConfig(SourceConfig):
    source_bootstrap: str = Field(description="bootstrap servers of the cluster to read")
    source_topic: str = Field(description="topic to replicate")
    source_group: str | None = Field(
        default=None,
        description="consumer group on that cluster [default: streamport-<output_topic>]",
    )
    source_offset_reset: OffsetReset = Field(
        default="earliest", description="where a new group starts: earliest or latest"
    )
    source_kafka_config: dict[str, str] = Field(
        default_factory=dict, description="librdkafka properties for that cluster (sasl.*, ...)"
    )
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="records per write")


class KafkaSource(Source[KafkaSourceConfig]):
    """A topic of another Kafka cluster → a streamport topic."""

    name = "kafka-source"
    summary = "replicate a topic from another Kafka cluster"
    config_class = KafkaSourceConfig

    def __init__(self, config: KafkaSourceConfig) -> None:
        super().__init__(config)
        self._broker: KafkaBroker | None = None
        self._consumer: Consumer | None = None
        self._state = _State.DISCONNECTED

    async def setup(self) -> None:
        config = self.config
        broker = KafkaBroker(config.source_bootstrap, client_config=config.source_kafka_config)
        try:
            await broker.start()
            await broker.describe_topic(config.source_topic)  # fail early: unknown topic
            consumer = broker.consumer(
                [config.source_topic],
                group=config.source_group or f"streamport-{config.output_topic}",
                auto_offset_reset=config.source_offset_reset,
            )
            await consumer.start()
        except BrokerError as exc:
            await broker.aclose()
            raise _translate(exc, f"connect to {config.source_bootstrap}") from exc
        self._broker, self._consumer = broker, consumer
        self._state = _State.CONNECTED

    async def run(self, output: Output) -> None:
        consumer = self._consumer
        if consumer is None:
            raise ConnectorError("KafkaSource.run() before setup()")
        while not output.stopping.is_set():
            try:
                fetched = await consumer.fetch(self.config.batch_size, timeout=0.5)
            except BrokerError as exc:
                error = _translate(exc, f"fetch from {self.config.source_topic}")
                if not error.retriable:
                    raise error from exc
                output.metrics.retried(error)
                try:
                    await output.sleep(1.0)
                except Stopped:
                    return
                continue
            if not fetched:
                continue
            output.metrics.read(len(fetched))
            await output.send(
                [SourceRecord(value=r.value, key=r.key, headers=r.headers) for r in fetched]
            )
            offsets: dict[TopicPartition, int] = {}
            for r in fetched:
                offsets[TopicPartition(r.topic, r.partition)] = r.offset + 1
            try:
                await consumer.commit(offsets)
            except BrokerError as exc:
                # Not fatal: the records are durable; a later commit covers them, and a restart
                # before one replays them (at-least-once).
                output.metrics.retried(_translate(exc, "offset commit"))

    async def close(self) -> None:
        consumer, broker = self._consumer, self._broker
        self._consumer = self._broker = None
        self._state = _State.CLOSED
        if consumer is not None:
            with contextlib.suppress(BrokerError):
                await consumer.aclose()
        if broker is not None:
            with contextlib.suppress(BrokerError):
                await broker.aclose()


class KafkaDestinationConfig(DestinationConfig):
    target_bootstrap: str = Field(description="bootstrap servers of the cluster to write")
    target_topic: str | None = Field(
        default=None, description="topic to write [default: the input topic's name]"
    )
    target_kafka_config: dict[str, str] = Field(
        default_factory=dict, description="librdkafka properties for that cluster (sasl.*, ...)"
    )
    create_topic: bool = Field(default=True, description="create the topic if it is missing")
    partitions: int = Field(default=1, ge=1, description="partitions of a created topic")
    keep_partition: bool = Field(
        default=False,
        description="write each record to the partition number it had (else by key)",
    )


class KafkaDestination(Destination[KafkaDestinationConfig]):
    """A streamport topic → a topic of another Kafka cluster."""

    name = "kafka-destination"
    summary = "replicate a topic to another Kafka cluster"
    config_class = KafkaDestinationConfig

    def __init__(self, config: KafkaDestinationConfig) -> None:
        super().__init__(config)
        self._broker: KafkaBroker | None = None
        self._state = _State.DISCONNECTED
        self._topic = config.target_topic or config.input_topic

    async def setup(self) -> None:
        config = self.config
        broker = KafkaBroker(config.target_bootstrap, client_config=config.target_kafka_config)
        try:
            await broker.start()
            if config.create_topic:
                with contextlib.suppress(TopicExists):
                    await broker.create_topic(
                        self._topic, TopicConfig(partitions=config.partitions)
                    )
            await broker.describe_topic(self._topic)
        except BrokerError as exc:
            await broker.aclose()
            raise _translate(exc, f"connect to {config.target_bootstrap}") from exc
        self._broker = broker
        self._state = _State.CONNECTED

    async def write(self, batch: list[SinkRecord]) -> None:
        broker = self._broker
        if broker is None:
            raise ConnectorError("KafkaDestination.write() before setup()")
        keep = self.config.keep_partition
        records = [
            Record(
                value=r.value,
                key=r.key,
                headers=r.headers,
                timestamp_ms=r.timestamp_ms,
                partition=r.partition if keep else None,
            )
            for r in batch
        ]
        try:
            await broker.produce(self._topic, records)
        except BrokerError as exc:
            raise _translate(exc, f"produce to {self._topic}") from exc

    async def close(self) -> None:
        broker, self._broker = self._broker, None
        self._state = _State.CLOSED
        if broker is not None:
            with contextlib.suppress(BrokerError):
                await broker.aclose()
