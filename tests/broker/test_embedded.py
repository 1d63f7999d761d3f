"""What only the embedded backend promises: its directory, recovery, retention, durability."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from streamport.broker.base import Record, TopicConfig, TopicPartition, Watermarks
from streamport.broker.embedded import EmbeddedBroker
from streamport.errors import BrokerClosed, DataDirError, RecordTooLarge
from tests.broker.test_contract import fetch_n


def segments(root: Path, topic: str, partition: int = 0) -> list[Path]:
    return sorted((root / "topics" / topic / str(partition)).glob("*.log"))


async def read_all(broker: EmbeddedBroker, topic: str) -> list[bytes]:
    total = sum(m.high - m.low for m in await broker.watermarks(topic))
    async with broker.consumer([topic], auto_offset_reset="earliest") as consumer:
        return [r.value for r in await fetch_n(consumer, total, wait=5)]


# --- the data directory ------------------------------------------------------------------------


async def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataDirError, match=r"no streamport-data\.json marker"):
        await EmbeddedBroker(tmp_path).start()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # left untouched


async def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path):
        pass
    marker = tmp_path / "streamport-data.json"
    marker.write_text(json.dumps({"format": "streamport.embedded-log", "version": 99}))
    with pytest.raises(DataDirError, match="version 99"):
        await EmbeddedBroker(tmp_path).start()
    marker.write_text("{not json")
    with pytest.raises(DataDirError, match="unreadable"):
        await EmbeddedBroker(tmp_path).start()


async def test_garbage_segment_header_is_refused(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        await broker.produce("t", [Record(b"x")])
    [seg] = segments(tmp_path, "t")
    data = bytearray(seg.read_bytes())
    data[0:6] = b"GARBAG"
    seg.write_bytes(bytes(data))
    with pytest.raises(DataDirError, match="not a streamport segment file"):
        await EmbeddedBroker(tmp_path).start()


async def test_second_opener_is_refused(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path):
        with pytest.raises(DataDirError, match="in use by another"):
            await EmbeddedBroker(tmp_path).start()
    async with EmbeddedBroker(tmp_path):  # released on close
        pass


async def test_closed_broker_refuses_work(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path)
    async with broker:
        await broker.create_topic("t")
    with pytest.raises(BrokerClosed):
        await broker.produce("t", [Record(b"x")])


# --- recovery ----------------------------------------------------------------------------------


async def test_restart_keeps_records_and_committed_offsets(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t", TopicConfig(partitions=2, retention_bytes=1 << 30))
        await broker.produce("t", [Record(b"%d" % i, key=b"%d" % i) for i in range(20)])
        async with broker.consumer(["t"], group="g", auto_offset_reset="earliest") as c:
            await fetch_n(c, 20, wait=5)
            await c.commit({TopicPartition("t", 0): 1})
        before = await broker.watermarks("t")
    async with EmbeddedBroker(tmp_path) as broker:
        assert await broker.watermarks("t") == before
        assert await broker.committed("g", "t") == {0: 1}
        [info] = await broker.list_topics()
        assert (info.partitions, info.retention_bytes) == (2, 1 << 30)
        assert sorted(await read_all(broker, "t"), key=int) == [b"%d" % i for i in range(20)]
        metas = await broker.produce("t", [Record(b"more", partition=0)])
        assert metas[0].offset == before[0].high


async def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        await broker.produce("t", [Record(b"a"), Record(b"b")])
        await broker.produce("t", [Record(b"c")])
    [seg] = segments(tmp_path, "t")
    good = seg.read_bytes()
    seg.write_bytes(good + good[16:40])  # half a frame header and payload: a cut-short write
    async with EmbeddedBroker(tmp_path) as broker:
        assert seg.read_bytes() == good
        assert await broker.watermarks("t") == [Watermarks(0, 3)]
        assert (await broker.produce("t", [Record(b"d")]))[0].offset == 3
        assert await read_all(broker, "t") == [b"a", b"b", b"c", b"d"]


async def test_bad_crc_in_last_frame_is_truncated(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        await broker.produce("t", [Record(b"a")])
        await broker.produce("t", [Record(b"b" * 100)])
    [seg] = segments(tmp_path, "t")
    data = bytearray(seg.read_bytes())
    data[-10] ^= 0xFF
    seg.write_bytes(bytes(data))
    async with EmbeddedBroker(tmp_path) as broker:
        assert await broker.watermarks("t") == [Watermarks(0, 1)]
        assert await read_all(broker, "t") == [b"a"]


async def test_corruption_before_the_tail_is_refused(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path, segment_bytes=100) as broker:
        await broker.create_topic("t")
        for i in range(3):
            await broker.produce("t", [Record(b"%d" % i * 50)])
    first = segments(tmp_path, "t")[0]
    data = bytearray(first.read_bytes())
    data[-5] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(DataDirError, match="corrupt"):
        await EmbeddedBroker(tmp_path).start()


# --- segments and retention --------------------------------------------------------------------


async def test_segments_roll_and_reads_cross_them(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path, segment_bytes=1000) as broker:
        await broker.create_topic("t")
        for i in range(20):
            await broker.produce("t", [Record(b"%03d" % i + b"x" * 200)])
        assert len(segments(tmp_path, "t")) > 3
        values = await read_all(broker, "t")
        assert [v[:3] for v in values] == [b"%03d" % i for i in range(20)]
    async with EmbeddedBroker(tmp_path, segment_bytes=1000) as broker:
        assert await broker.watermarks("t") == [Watermarks(0, 20)]


async def test_retention_by_bytes_deletes_old_segments(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path, segment_bytes=1000) as broker:
        await broker.create_topic("t", TopicConfig(retention_bytes=3000))
        for _ in range(40):
            await broker.produce("t", [Record(b"x" * 200)])
        assert await broker.enforce_retention() > 0
        [marks] = await broker.watermarks("t")
        assert marks.high == 40 and marks.low > 0
        assert sum(p.stat().st_size for p in segments(tmp_path, "t")) <= 3000 + 1000
        # A consumer left behind the low watermark resets instead of failing.
        async with broker.consumer(["t"], auto_offset_reset="earliest") as c:
            await c.seek(TopicPartition("t", 0), 0)
            got = await fetch_n(c, 40 - marks.low, wait=5)
            assert got[0].offset == marks.low
    async with EmbeddedBroker(tmp_path, segment_bytes=1000) as broker:
        assert (await broker.watermarks("t"))[0] == marks


async def test_retention_by_time_empties_the_partition(tmp_path: Path) -> None:
    long_ago = int(time.time() * 1000) - 3_600_000
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t", TopicConfig(retention_ms=60_000))
        await broker.produce("t", [Record(b"old", timestamp_ms=long_ago)] * 5)
        assert await broker.enforce_retention() == 1
        assert await broker.watermarks("t") == [Watermarks(5, 5)]
        assert (await broker.produce("t", [Record(b"new")]))[0].offset == 5
        assert await broker.enforce_retention() == 0  # fresh data stays
        assert await read_all(broker, "t") == [b"new"]
    async with EmbeddedBroker(tmp_path) as broker:
        assert await broker.watermarks("t") == [Watermarks(5, 6)]


async def test_retention_runs_in_the_background(tmp_path: Path) -> None:
    long_ago = int(time.time() * 1000) - 3_600_000
    async with EmbeddedBroker(tmp_path, retention_check_interval=0.05) as broker:
        await broker.create_topic("t", TopicConfig(retention_ms=1000))
        await broker.produce("t", [Record(b"old", timestamp_ms=long_ago)])
        for _ in range(200):
            if (await broker.watermarks("t"))[0].low == 1:
                break
            await asyncio.sleep(0.05)
        assert await broker.watermarks("t") == [Watermarks(1, 1)]
        assert broker.retention_failures == 0


# --- produce -----------------------------------------------------------------------------------


async def test_fsync_always(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path, fsync="always", segment_bytes=500) as broker:
        await broker.create_topic("t", TopicConfig(partitions=2))
        for i in range(10):
            await broker.produce("t", [Record(b"%d" % i * 100, key=b"%d" % i)])
        async with broker.consumer(["t"], group="g", auto_offset_reset="earliest") as c:
            await fetch_n(c, 10, wait=5)
            await c.commit()
    async with EmbeddedBroker(tmp_path) as broker:
        assert sum(m.high for m in await broker.watermarks("t")) == 10
        assert sum((await broker.committed("g", "t")).values()) == 10


async def test_concurrent_producers_share_writes(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t", TopicConfig(partitions=3))

        async def one(i: int) -> list[tuple[int, int]]:
            metas = await broker.produce("t", [Record(b"%d" % i, key=b"%d" % (i % 7))] * 3)
            return [(m.partition, m.offset) for m in metas]

        results = await asyncio.gather(*(one(i) for i in range(200)))
        places = [m for r in results for m in r]
        assert len(set(places)) == 600
        marks = await broker.watermarks("t")
        for p, mark in enumerate(marks):
            assert sorted(o for q, o in places if q == p) == list(range(mark.high))


async def test_small_appends_are_written_without_waiting_for_the_loop(tmp_path: Path) -> None:
    # Idle writer thread, no fsync: the produce completes in the caller's step, without the
    # crossing to the writer thread and back (the coroutine never suspends).
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        produce = broker.produce("t", [Record(b"now")])
        with pytest.raises(StopIteration) as finished:
            produce.send(None)
        [meta] = finished.value.value
        assert (meta.partition, meta.offset) == (0, 0)
        assert (await broker.watermarks("t"))[0].high == 1
        assert await read_all(broker, "t") == [b"now"]


async def test_a_waiting_fetch_resumes_in_the_loop_turn_after_the_produce(tmp_path: Path) -> None:
    # The fan-out reader waits in fetch: it must run before the writers that the same produce
    # woke (they resume in that turn too, and each writes its acknowledgement first otherwise).
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        async with broker.consumer(["t"], auto_offset_reset="earliest") as consumer:
            fetch = asyncio.ensure_future(consumer.fetch(10, timeout=30))
            for _ in range(3):
                await asyncio.sleep(0)
            assert not fetch.done()  # waiting
            await broker.produce("t", [Record(b"now")])
            await asyncio.sleep(0)
            assert fetch.done()
            assert [r.value for r in fetch.result()] == [b"now"]
            # and the timeout still ends a wait that nothing wakes
            assert await consumer.fetch(10, timeout=0.05) == []


async def test_writes_keep_their_order_between_the_loop_and_the_writer_thread(
    tmp_path: Path,
) -> None:
    # Large batches and offset commits go through the writer thread, small batches are written
    # by the loop while the thread is idle: every batch still lands in call order.
    from streamport.broker.embedded._writer import INLINE_BYTES

    big = INLINE_BYTES + 1
    values = [b"%03d" % i + (b"x" * big if i % 5 == 0 else b"") for i in range(40)]
    async with EmbeddedBroker(tmp_path, max_record_bytes=2 * big) as broker:
        await broker.create_topic("t")
        await broker.create_topic("c")
        await broker.produce("c", [Record(b"c")])
        async with broker.consumer(["c"], group="g", auto_offset_reset="earliest") as c:
            await fetch_n(c, 1, wait=5)
            tasks = []
            for i, value in enumerate(values):
                tasks.append(asyncio.ensure_future(broker.produce("t", [Record(value)])))
                if i % 3 == 0:
                    tasks.append(asyncio.ensure_future(c.commit()))
                if i % 7 == 0:
                    await asyncio.sleep(0)
            done = await asyncio.gather(*tasks)
        offsets = [metas[0].offset for metas in done if metas]
        assert offsets == list(range(len(values)))
        assert await read_all(broker, "t") == values
    async with EmbeddedBroker(tmp_path) as broker:  # and so it is on disk
        assert await read_all(broker, "t") == values
        assert await broker.committed("g", "c") == {0: 1}


async def test_a_failed_write_in_the_loop_is_reported_and_leaves_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from streamport.errors import BrokerUnavailable

    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        await broker.produce("t", [Record(b"a")])
        real = os.pwritev

        def full(fd: int, buffers: list[bytes], offset: int) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "pwritev", full)
        with pytest.raises(BrokerUnavailable, match="No space left"):
            await broker.produce("t", [Record(b"lost")])
        monkeypatch.setattr(os, "pwritev", real)
        [meta] = await broker.produce("t", [Record(b"b")])
        assert meta.offset == 1
        assert await read_all(broker, "t") == [b"a", b"b"]
    async with EmbeddedBroker(tmp_path) as broker:
        assert await read_all(broker, "t") == [b"a", b"b"]


async def test_max_record_bytes_is_configurable(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path, max_record_bytes=100) as broker:
        await broker.create_topic("t")
        await broker.produce("t", [Record(b"x" * 90, key=b"k")])
        with pytest.raises(RecordTooLarge, match=r"records\[2\] is 101 bytes"):
            await broker.produce("t", [Record(b"a"), Record(b"b"), Record(b"x" * 100, key=b"k")])


async def test_delete_topic_removes_files_and_offsets(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        await broker.produce("t", [Record(b"x")])
        async with broker.consumer(["t"], group="g", auto_offset_reset="earliest") as c:
            await fetch_n(c, 1, wait=5)
            await c.commit()
            await broker.delete_topic("t")
            assert c.assignment() == frozenset()
        assert not (tmp_path / "topics" / "t").exists()
        await broker.create_topic("t")
        assert await broker.committed("g", "t") == {}
        assert await broker.watermarks("t") == [Watermarks(0, 0)]


# --- reads of the newest batches ---------------------------------------------------------------


async def test_readers_that_keep_up_read_the_newest_batches_from_memory(tmp_path: Path) -> None:
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        await broker.produce("t", [Record(value=b"old")])
        for path in segments(tmp_path, "t"):
            path.unlink()  # what is read from here on cannot come from the file
        await broker.produce("t", [Record(value=b"a", key=b"k"), Record(value=b"b", key=b"k")])
        async with broker.consumer(["t"], auto_offset_reset="latest") as consumer:
            await consumer.seek(TopicPartition("t", 0), 1)
            got = await fetch_n(consumer, 2, wait=5)
    assert [(r.offset, r.key, r.value) for r in got] == [(1, b"k", b"a"), (2, b"k", b"b")]


async def test_reads_cross_from_the_file_into_the_memory_tail(tmp_path: Path) -> None:
    # 300 batches of 1 KiB: the oldest are only in the file, the newest also in memory.
    values = [bytes([i % 256]) * 1024 for i in range(300)]
    async with EmbeddedBroker(tmp_path) as broker:
        await broker.create_topic("t")
        for value in values:
            await broker.produce("t", [Record(value=value)])
        assert await read_all(broker, "t") == values
        async with broker.consumer(["t"], auto_offset_reset="earliest") as consumer:
            await consumer.seek(TopicPartition("t", 0), 250)
            assert [r.value for r in await fetch_n(consumer, 50, wait=5)] == values[250:]
