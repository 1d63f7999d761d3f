"""The Writer joins the produce calls of one event-loop turn into one broker call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from streamport.broker import Record, RecordMetadata
from streamport.broker.embedded import EmbeddedBroker
from streamport.errors import RecordTooLarge
from streamport.streams.writer import Writer


class CountingBroker(EmbeddedBroker):
    calls: list[int]

    async def produce(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        self.calls.append(len(records))
        return await super().produce(topic, records)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[CountingBroker]:
    async with CountingBroker(tmp_path / "log", max_record_bytes=100) as started:
        started.calls = []
        yield started


@pytest.fixture
async def writer(broker: CountingBroker) -> Writer:
    """A Writer whose topic "t" exists."""
    started = Writer(broker)
    await started.ensure_topic("t")
    return started


def writes(writer: Writer, n: int) -> list[asyncio.Future[list[RecordMetadata]]]:
    """`n` writers of one record each to "t", started together (they join one produce)."""
    return [asyncio.ensure_future(writer.produce("t", records(f"w{i}", 1))) for i in range(n)]


def records(tag: str, n: int) -> list[Record]:
    return [Record(value=f"{tag}-{i}".encode(), key=b"k") for i in range(n)]


async def test_writes_of_one_loop_turn_share_one_produce_in_arrival_order(
    writer: Writer,
    broker: CountingBroker,
) -> None:
    results = await asyncio.gather(*(writer.produce("t", records(f"w{n}", 3)) for n in range(10)))
    assert broker.calls == [30]
    offsets = [[m.offset for m in placed] for placed in results]
    assert offsets == [[3 * n, 3 * n + 1, 3 * n + 2] for n in range(10)]
    async with broker.consumer(["t"], auto_offset_reset="earliest") as consumer:
        got = await consumer.fetch(max_records=30, timeout=5)
    assert [r.value for r in got] == [f"w{n}-{i}".encode() for n in range(10) for i in range(3)]


async def test_a_refused_record_fails_only_its_own_writer(writer: Writer) -> None:
    big = [Record(value=b"x" * 500)]
    outcomes = await asyncio.gather(
        writer.produce("t", records("a", 1)),
        writer.produce("t", big),
        writer.produce("t", records("c", 1)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], RecordTooLarge)
    assert outcomes[1].field == "records[0]"  # named within its own request
    assert [m.offset for m in outcomes[0]] == [0]  # type: ignore[union-attr]
    assert [m.offset for m in outcomes[2]] == [1]  # type: ignore[union-attr]


async def test_a_cancelled_leader_still_settles_the_others(
    writer: Writer, broker: CountingBroker
) -> None:
    leader = asyncio.ensure_future(writer.produce("t", records("lead", 1)))
    followers = [asyncio.ensure_future(writer.produce("t", records(f"f{n}", 1))) for n in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the joint produce has started
    leader.cancel()
    placed = await asyncio.wait_for(asyncio.gather(*followers), timeout=10)
    assert [p[0].offset for p in placed] == [1, 2, 3]
    assert broker.calls == [4]


async def test_a_writer_cancelled_before_the_joint_produce_is_left_out(
    writer: Writer,
    broker: CountingBroker,
) -> None:
    tasks = writes(writer, 3)
    await asyncio.sleep(0)  # all three joined; the joint produce runs in the next turn
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [p[0].offset for p in (done[0], done[2])] == [0, 1]  # type: ignore[index]
    assert broker.calls == [2]


async def test_joined_writers_resume_one_turn_after_the_produce(
    writer: Writer, broker: CountingBroker
) -> None:
    # The embedded broker appends small batches without suspending, so from the writers' first
    # step: one turn to join, the produce, one turn to resume (no shield or callback hops).
    tasks = writes(writer, 3)
    turns = 0
    while not all(task.done() for task in tasks):
        await asyncio.sleep(0)
        turns += 1
    assert turns == 3  # the writers' first step, the joint produce, the writers' resumption
    assert broker.calls == [3]


async def test_a_joint_produce_cancelled_before_it_ran_strands_nobody(
    writer: Writer,
    broker: CountingBroker,
) -> None:
    first = asyncio.ensure_future(writer.produce("t", records("a", 1)))
    await asyncio.sleep(0)  # it joined; its joint produce has not run yet
    for task in writer._joint:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(first, timeout=5)
    [placed] = await asyncio.wait_for(writer.produce("t", records("b", 1)), timeout=5)
    assert placed.offset == 0 and broker.calls == [1]
    assert writer.in_flight("t") == 0


async def test_in_flight_counts_the_writes_whose_joint_produce_has_not_returned(
    writer: Writer,
) -> None:
    seen: list[int] = []

    async def write(tag: str) -> None:
        await writer.produce("t", records(tag, 1))
        seen.append(writer.in_flight("t"))

    tasks = [asyncio.ensure_future(write(f"w{n}")) for n in range(3)]
    await asyncio.sleep(0)
    assert writer.in_flight("t") == 3  # joined, the joint produce not run yet
    assert writer.in_flight("other") == 0
    await asyncio.gather(*tasks)
    assert seen == [0, 0, 0]  # in the log before any writer resumed
    refused = await asyncio.gather(
        writer.produce("t", [Record(value=b"x" * 500)]), return_exceptions=True
    )
    assert isinstance(refused[0], RecordTooLarge)
    assert writer.in_flight("t") == 0
