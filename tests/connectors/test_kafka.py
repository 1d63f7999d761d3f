"""Kafka source and destination end to end: the test Kafka broker plays the "other cluster",
a live gateway (embedded log) is streamport."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streamport.broker import ConsumedRecord, Record, TopicConfig
from streamport.broker.kafka import KafkaBroker
from streamport.connectors.kafka import (
    KafkaDestination,
    KafkaDestinationConfig,
    KafkaSource,
    KafkaSourceConfig,
)
from streamport.connectors.runtime import Runner
from tests.connectors.conftest import platform
from tests.gateway.conftest import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def server(gw: Gateway) -> dict[str, Any]:
    return dict(platform(gw))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def read_kafka(bootstrap: str, topic: str, count: int) -> list[ConsumedRecord]:
    out: list[ConsumedRecord] = []
    async with (
        KafkaBroker(bootstrap) as broker,
        broker.consumer([topic], auto_offset_reset="earliest") as consumer,
    ):
        for _ in range(60):
            out.extend(await consumer.fetch(count - len(out), timeout=1.0))
            if len(out) >= count:
                break
    return out


async def test_source_replicates_a_topic_and_resumes_from_its_committed_offsets(
    gateway: Gateway, kafka_bootstrap: str
) -> None:
    topic = unique("orders")
    async with KafkaBroker(kafka_bootstrap) as other:
        await other.create_topic(topic, TopicConfig(partitions=2))
        await other.produce(
            topic,
            [
                Record(f'{{"n":{n}}}'.encode(), key=f"k{n}".encode(), headers=(("h", b"v"),))
                for n in range(10)
            ],
        )

        def config() -> KafkaSourceConfig:
            return KafkaSourceConfig(
                output_topic="replica",
                source_bootstrap=kafka_bootstrap,
                source_topic=topic,
                source_group=f"g-{topic}",
                **server(gateway),
            )

        first = await Runner(KafkaSource(config())).run(timeout=60, count=10)
        assert first.records_out == 10
        committed = await other.committed(f"g-{topic}", topic)
        assert sum(committed.values()) == 10

        await other.produce(topic, [Record(b'{"n":10}', key=b"k10")])
        second = await Runner(KafkaSource(config())).run(timeout=60, count=1)
        assert second.records_out == 1

    records = await gateway.read("replica", 11)
    assert sorted(r.key or b"" for r in records) == sorted(f"k{n}".encode() for n in range(11))
    by_key = {r.key: r for r in records}
    assert by_key[b"k3"].value == b'{"n":3}'
    assert by_key[b"k3"].headers == (("h", b"v"),)
    assert (await gateway.broker.watermarks("replica"))[0].high == 11  # nothing twice


async def test_destination_replicates_a_topic_to_another_cluster(
    gateway: Gateway, kafka_bootstrap: str
) -> None:
    target = unique("mirror")
    async with gateway.client() as http:
        response = await http.post(
            "/writer/topics/telemetry/streams/car-9/parameters/data",
            json={"timestamps": [1, 2], "numericValues": {"speed": [1.5, 2.5]}},
        )
        assert response.status_code == 200, response.text
    await gateway.broker.produce("telemetry", [Record(b"raw", key=b"r", headers=(("x", b"1"),))])
    source = await gateway.read("telemetry", (await gateway.broker.watermarks("telemetry"))[0].high)
    config = KafkaDestinationConfig(
        input_topic="telemetry",
        target_bootstrap=kafka_bootstrap,
        target_topic=target,
        **server(gateway),
    )
    result = await Runner(KafkaDestination(config)).run(timeout=60, count=len(source))
    assert result.records_out == len(source)
    copied = await read_kafka(kafka_bootstrap, target, len(source))
    assert [(r.key, r.value, r.headers, r.timestamp_ms) for r in copied] == [
        (r.key, r.value, r.headers, r.timestamp_ms) for r in source
    ]
