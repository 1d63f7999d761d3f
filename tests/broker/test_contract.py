"""The Broker contract: every backend in ``BACKENDS`` must pass these.

Backend-agnostic on purpose: unique topic names per test, generous waits (a real Kafka needs
seconds to create topics and rebalance groups), nothing that only one backend can do.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from streamport.broker.base import (
    Broker,
    ConsumedRecord,
    Consumer,
    Record,
    TopicConfig,
    TopicPartition,
    Watermarks,
)
from streamport.broker.partitioner import partition_for_key
from streamport.errors import (
    BrokerError,
    InvalidOffset,
    InvalidTopicName,
    RecordTooLarge,
    TopicExists,
    UnknownTopic,
    ValidationError,
)

WAIT = 30.0  # seconds a test waits for something to arrive before it fails


async def fetch_n(consumer: Consumer, n: int, wait: float = WAIT) -> list[ConsumedRecord]:
    """Fetch until `n` records arrived or `wait` seconds passed."""
    out: list[ConsumedRecord] = []
    deadline = time.monotonic() + wait
    while len(out) < n and time.monotonic() < deadline:
        out += await consumer.fetch(max_records=n - len(out), timeout=1.0)
    return out


async def wait_for_assignment(consumer: Consumer, size: int, wait: float = WAIT) -> None:
    deadline = time.monotonic() + wait
    while len(consumer.assignment()) != size and time.monotonic() < deadline:
        await consumer.fetch(max_records=1, timeout=0.2)
    assert len(consumer.assignment()) == size


# --- topics ------------------------------------------------------------------------------------


async def test_create_describe_list_delete(broker: Broker, topic: str) -> None:
    info = await broker.create_topic(
        topic, TopicConfig(partitions=3, retention_ms=3_600_000, retention_bytes=10_000_000)
    )
    assert (info.name, info.partitions) == (topic, 3)
    assert (info.retention_ms, info.retention_bytes) == (3_600_000, 10_000_000)
    assert await broker.describe_topic(topic) == info
    assert topic in [t.name for t in await broker.list_topics()]
    await broker.delete_topic(topic)
    assert topic not in [t.name for t in await broker.list_topics()]
    with pytest.raises(UnknownTopic):
        await broker.describe_topic(topic)


async def test_topic_errors(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    with pytest.raises(TopicExists):
        await broker.create_topic(topic)
    for bad in ("", "a b", "x" * 250, "..", "ü"):
        with pytest.raises(InvalidTopicName):
            await broker.create_topic(bad)
    missing = topic + "-missing"
    with pytest.raises(UnknownTopic):
        await broker.describe_topic(missing)
    with pytest.raises(UnknownTopic):
        await broker.produce(missing, [Record(b"x")])
    with pytest.raises(UnknownTopic):
        await broker.watermarks(missing)
    with pytest.raises(UnknownTopic):
        await broker.delete_topic(missing)


async def test_default_config(broker: Broker, topic: str) -> None:
    info = await broker.create_topic(topic)
    assert info.partitions == 1
    assert await broker.watermarks(topic) == [Watermarks(0, 0)]


# --- produce -----------------------------------------------------------------------------------


async def test_offsets_are_sequential_per_partition(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=1))
    first = await broker.produce(topic, [Record(b"a"), Record(b"b")])
    second = await broker.produce(topic, [Record(b"c")])
    assert [tuple(m) for m in first + second] == [(0, 0), (0, 1), (0, 2)]
    assert await broker.watermarks(topic) == [Watermarks(0, 3)]


async def test_key_partition_is_kafka_murmur2(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=7))
    keys = [f"stream-{i}".encode() for i in range(40)]
    metas = await broker.produce(topic, [Record(b"v", key=k) for k in keys])
    assert [m.partition for m in metas] == [partition_for_key(k, 7) for k in keys]
    again = await broker.produce(topic, [Record(b"w", key=keys[5])])
    assert again[0].partition == metas[5].partition


async def test_explicit_partition_is_honoured_and_validated(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=3))
    metas = await broker.produce(
        topic, [Record(b"x", key=b"k", partition=2), Record(b"y", partition=1)]
    )
    assert [m.partition for m in metas] == [2, 1]
    with pytest.raises(ValidationError) as err:
        await broker.produce(topic, [Record(b"ok"), Record(b"x", partition=3)])
    assert err.value.field == "records[1].partition"


async def test_unkeyed_records_land_on_valid_partitions(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=4))
    seen = set()
    for _ in range(20):
        for meta in await broker.produce(topic, [Record(b"x"), Record(b"y")]):
            assert 0 <= meta.partition < 4
            seen.add(meta.partition)
    marks = await broker.watermarks(topic)
    assert sum(m.high for m in marks) == 40
    assert len(seen) > 1  # not everything on one partition forever


async def test_record_too_large_names_the_record(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    big = Record(b"x" * (2 << 20))
    with pytest.raises(RecordTooLarge) as err:
        await broker.produce(topic, [Record(b"small"), big])
    assert "records[1]" in str(err.value)
    assert err.value.field == "records[1]"
    assert await broker.watermarks(topic) == [Watermarks(0, 0)]  # nothing of the call written


async def test_empty_produce(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    assert await broker.produce(topic, []) == []


# --- consume -----------------------------------------------------------------------------------


async def test_round_trip_keeps_everything(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=2))
    records = [
        Record(f"v{i}".encode(), key=f"k{i % 5}".encode(), headers=(("h", b"%d" % i),))
        for i in range(50)
    ]
    records.append(Record(b"stamped", key=b"k0", timestamp_ms=1_600_000_000_123))
    before = int(time.time() * 1000)
    metas = await broker.produce(topic, records)
    async with broker.consumer([topic], auto_offset_reset="earliest") as consumer:
        got = await fetch_n(consumer, len(records))
    assert len(got) == len(records)
    by_place = {(r.partition, r.offset): r for r in got}
    for rec, meta in zip(records, metas, strict=True):
        out = by_place[(meta.partition, meta.offset)]
        assert (out.topic, out.key, out.value, out.headers) == (
            topic,
            rec.key,
            rec.value,
            rec.headers,
        )
        if rec.timestamp_ms is not None:
            assert out.timestamp_ms == rec.timestamp_ms
        else:
            assert out.timestamp_ms >= before - 60_000
    for p in (0, 1):
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == sorted(offsets)


async def test_fetch_times_out_empty(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    async with broker.consumer([topic], auto_offset_reset="earliest") as consumer:
        assert await consumer.fetch(timeout=0.2) == []


async def test_latest_consumer_is_woken_by_a_produce_from_another_task(
    broker: Broker, topic: str
) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=2))
    await broker.produce(topic, [Record(b"old")])
    async with broker.consumer([topic], auto_offset_reset="latest") as consumer:
        await wait_for_assignment(consumer, 2)
        for tp in consumer.assignment():
            assert (
                await consumer.position(tp) == (await broker.watermarks(topic))[tp.partition].high
            )

        async def later() -> None:
            await asyncio.sleep(0.3)
            await broker.produce(topic, [Record(b"new", key=b"k")])

        task = asyncio.create_task(later())
        got = await fetch_n(consumer, 1)
        await task
    assert [r.value for r in got] == [b"new"]


async def test_max_records_is_respected(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    await broker.produce(topic, [Record(b"%d" % i) for i in range(30)])
    async with broker.consumer([topic], auto_offset_reset="earliest") as consumer:
        first = await fetch_n(consumer, 10)
        assert [r.offset for r in first[:10]] == list(range(10))
        rest = await fetch_n(consumer, 20)
    assert [r.offset for r in first + rest] == list(range(30))


async def test_seek(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    # Recent timestamps: Kafka's time retention (checked every second in the test cluster) would
    # delete records stamped years ago, and a fetch at offset 4 then resets to the end.
    base = int(time.time() * 1000) - 60_000
    await broker.produce(
        topic, [Record(b"%d" % i, timestamp_ms=base + i * 1000) for i in range(10)]
    )
    tp = TopicPartition(topic, 0)
    async with broker.consumer([topic], auto_offset_reset="latest") as consumer:
        await wait_for_assignment(consumer, 1)
        await consumer.seek(tp, 4)
        assert [r.offset for r in await fetch_n(consumer, 2)] == [4, 5]
        await consumer.seek_to_beginning()
        assert (await fetch_n(consumer, 1))[0].offset == 0
        await consumer.seek_to_timestamp(base + 6500)
        assert (await fetch_n(consumer, 1))[0].offset == 7
        await consumer.seek_to_timestamp(base + 3000, [tp])
        assert (await fetch_n(consumer, 1))[0].offset == 3
        await consumer.seek_to_end()
        assert await consumer.position(tp) == 10
        assert await consumer.fetch(timeout=0.2) == []
        await consumer.seek_to_timestamp(base + 999_999)
        assert await consumer.position(tp) == 10


# --- groups ------------------------------------------------------------------------------------


async def test_commit_committed_and_lag(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=2))
    await broker.produce(topic, [Record(b"a", partition=0), Record(b"b", partition=0)])
    await broker.produce(topic, [Record(b"c", partition=1)])
    group = topic + "-g"
    assert await broker.committed(group, topic) == {}
    assert await broker.lag(group, topic) == {0: 2, 1: 1}
    async with broker.consumer([topic], group=group, auto_offset_reset="earliest") as consumer:
        await fetch_n(consumer, 3)
        await consumer.commit({TopicPartition(topic, 0): 1})
        assert await broker.committed(group, topic) == {0: 1}
        assert await broker.lag(group, topic) == {0: 1, 1: 1}
        await consumer.commit()
        assert await broker.committed(group, topic) == {0: 2, 1: 1}
        assert await broker.lag(group, topic) == {0: 0, 1: 0}


async def test_new_member_resumes_at_committed_offset(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    await broker.produce(topic, [Record(b"%d" % i) for i in range(10)])
    group = topic + "-g"
    async with broker.consumer([topic], group=group, auto_offset_reset="earliest") as first:
        got = await fetch_n(first, 4)
        await first.commit({TopicPartition(topic, 0): got[3].offset + 1})
        await fetch_n(first, 2)  # read but never committed: delivered again below
    async with broker.consumer([topic], group=group, auto_offset_reset="earliest") as second:
        rest = await fetch_n(second, 6)
    assert [r.offset for r in rest] == [4, 5, 6, 7, 8, 9]


async def test_members_share_partitions_and_rebalance(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic, TopicConfig(partitions=4))
    group = topic + "-g"
    a = broker.consumer([topic], group=group, auto_offset_reset="earliest")
    await a.start()
    try:
        await wait_for_assignment(a, 4)
        async with broker.consumer([topic], group=group, auto_offset_reset="earliest") as b:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline and not (a.assignment() and b.assignment()):
                await asyncio.gather(a.fetch(timeout=0.2), b.fetch(timeout=0.2))
            assert a.assignment() and b.assignment()
            assert a.assignment() | b.assignment() == {TopicPartition(topic, p) for p in range(4)}
            assert not a.assignment() & b.assignment()
        await wait_for_assignment(a, 4)  # b left: a has everything again
    finally:
        await a.aclose()


async def test_commit_errors(broker: Broker, topic: str) -> None:
    await broker.create_topic(topic)
    await broker.produce(topic, [Record(b"x")])
    async with broker.consumer([topic], auto_offset_reset="earliest") as loner:
        with pytest.raises(BrokerError, match="group"):
            await loner.commit()
    async with broker.consumer([topic], group=topic + "-g", auto_offset_reset="earliest") as member:
        await fetch_n(member, 1)
        with pytest.raises(InvalidOffset, match="high watermark"):
            await member.commit({TopicPartition(topic, 0): 5})
        await member.commit({TopicPartition(topic, 0): 1})  # == high is fine
    assert await broker.committed(topic + "-g", topic) == {0: 1}


async def test_consumer_of_unknown_topic(broker: Broker, topic: str) -> None:
    with pytest.raises(UnknownTopic):
        async with broker.consumer([topic + "-missing"]):
            pass
