"""What only the Kafka backend has: a real cluster's partitioner, outages, SASL, read-ahead.

The behaviour shared with the embedded log is in test_contract.py (its "kafka" parameter).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from streamport.broker.base import ConsumedRecord, Record, TopicConfig, TopicPartition
from streamport.broker.kafka import KafkaBroker, KafkaConsumer
from streamport.broker.kafka._consumer import BUFFER_RECORDS
from streamport.broker.partitioner import partition_for_key
from streamport.errors import BrokerError, BrokerUnavailable
from tests.services.kafka import SASL_USERS, KafkaService, shared_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

WAIT = 30.0


@pytest.fixture
def kafka() -> Iterator[KafkaService]:
    service = shared_kafka()
    yield service
    if not service.running:  # a failed outage test must not take the broker from the others
        service.start()


@pytest.fixture
def topic() -> str:
    return f"k-{uuid.uuid4().hex[:16]}"


def sasl(password: str) -> dict[str, str]:
    (user,) = SASL_USERS
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
    }


async def fetch_n(consumer: KafkaConsumer, n: int) -> list[ConsumedRecord]:
    out: list[ConsumedRecord] = []
    deadline = time.monotonic() + WAIT
    while len(out) < n and time.monotonic() < deadline:
        out += await consumer.fetch(max_records=n - len(out), timeout=1.0)
    return out


async def test_keys_land_where_the_murmur2_partitioner_says(
    kafka: KafkaService, topic: str
) -> None:
    keys = [b"", b"a", b"stream-1", "ünïcode".encode(), bytes(range(256))]
    keys += [uuid.UUID(int=i).bytes for i in range(200)]
    async with KafkaBroker(kafka.bootstrap) as broker:
        await broker.create_topic(topic, TopicConfig(partitions=12))
        metas = await broker.produce(topic, [Record(b"v", key=key) for key in keys])
    assert [m.partition for m in metas] == [partition_for_key(key, 12) for key in keys]
    assert len({m.partition for m in metas}) == 12


async def test_broker_restart_keeps_data_and_clients_reconnect(
    kafka: KafkaService, topic: str
) -> None:
    async with KafkaBroker(kafka.bootstrap) as broker:
        await broker.create_topic(topic)
        await broker.produce(topic, [Record(b"before")])
        kafka.restart()
        deadline = time.monotonic() + WAIT
        while True:  # the producer reconnects by itself; a retry is the caller's job
            try:
                await broker.produce(topic, [Record(b"after")])
                break
            except BrokerUnavailable:
                if time.monotonic() > deadline:
                    raise
        async with broker.consumer([topic], auto_offset_reset="earliest") as consumer:
            got = await fetch_n(consumer, 2)
    assert [(r.offset, r.value) for r in got] == [(0, b"before"), (1, b"after")]


async def test_produce_during_an_outage_fails_retriably(kafka: KafkaService, topic: str) -> None:
    client_config = {"message.timeout.ms": "3000"}
    async with KafkaBroker(kafka.bootstrap, client_config=client_config) as broker:
        await broker.create_topic(topic)
        await broker.produce(topic, [Record(b"up")])
        kafka.stop()
        try:
            with pytest.raises(BrokerUnavailable) as err:
                await broker.produce(topic, [Record(b"down")])
            assert err.value.retriable
        finally:
            kafka.start()
        assert [tuple(m) for m in await broker.produce(topic, [Record(b"up again")])] == [(0, 1)]


async def test_sasl_settings_pass_through(kafka: KafkaService, topic: str) -> None:
    (password,) = SASL_USERS.values()
    async with KafkaBroker(kafka.sasl_bootstrap, client_config=sasl(password)) as broker:
        await broker.create_topic(topic)
        await broker.produce(topic, [Record(b"secret", key=b"k")])
        async with broker.consumer([topic], group="g", auto_offset_reset="earliest") as consumer:
            got = await fetch_n(consumer, 1)
            await consumer.commit()
        assert [r.value for r in got] == [b"secret"]
        assert await broker.committed("g", topic) == {0: 1}


async def test_refused_credentials_are_named(kafka: KafkaService) -> None:
    broker = KafkaBroker(kafka.sasl_bootstrap, client_config=sasl("wrong"), request_timeout=5)
    with pytest.raises(BrokerError, match="credentials") as err:
        await broker.start()
    assert not err.value.retriable


async def test_read_ahead_is_bounded_and_loses_nothing(kafka: KafkaService, topic: str) -> None:
    total = BUFFER_RECORDS * 2 + 500
    async with KafkaBroker(kafka.bootstrap) as broker:
        await broker.create_topic(topic)
        for start in range(0, total, 5000):
            count = min(5000, total - start)
            await broker.produce(topic, [Record(b"%d" % i) for i in range(start, start + count)])
        async with broker.consumer([topic], auto_offset_reset="earliest") as consumer:
            first = await fetch_n(consumer, 10)
            await asyncio.sleep(1.0)  # the thread reads ahead until the buffer is full
            read_ahead = consumer._handed - consumer._taken
            assert BUFFER_RECORDS <= read_ahead <= BUFFER_RECORDS + 500
            rest = await fetch_n(consumer, total - 10)
    assert [r.offset for r in first + rest] == list(range(total))
    assert rest[-1].value == b"%d" % (total - 1)


async def test_a_cancelled_fetch_loses_nothing(kafka: KafkaService, topic: str) -> None:
    async with KafkaBroker(kafka.bootstrap) as broker:
        await broker.create_topic(topic)
        async with broker.consumer([topic], auto_offset_reset="latest") as consumer:
            waiting = asyncio.create_task(consumer.fetch(timeout=WAIT))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await broker.produce(topic, [Record(b"kept")])
            got = await fetch_n(consumer, 1)
            assert await consumer.position(TopicPartition(topic, 0)) == 1
    assert [r.value for r in got] == [b"kept"]
