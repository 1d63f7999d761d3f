"""The fan-out over the real embedded broker: matching, wildcards, lifecycle, slow subscribers,
reader failures."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamport.broker import Record, TopicConfig
from streamport.broker.embedded import EmbeddedBroker
from streamport.model import (
    EventData,
    ParameterDefinition,
    ParameterDefinitions,
    StreamProperties,
    TimeseriesData,
    encode,
)
from streamport.streams.fanout import FanOut, FanOutOptions, Kind, Push, Pushes, Subscriber
from streamport.streams.topic_metrics import TopicMetrics
from streamport.streams.writer import Writer

FAST = FanOutOptions(metrics_interval=0.2, backoff_initial=0.05, backoff_max=0.2)


class Inbox:
    """A subscriber collecting what it gets; `limit` simulates a bounded connection queue."""

    def __init__(self, limit: int | None = None) -> None:
        self.pushes: list[Push] = []
        self.limit = limit
        self.arrived = asyncio.Event()
        self.subscriber = Subscriber(self.send, "inbox")

    def send(self, push: Push) -> bool:
        if self.limit is not None and len(self.pushes) >= self.limit:
            return False  # "full": the owner would close this connection
        self.pushes.append(push)
        self.arrived.set()
        return True

    def of(self, target: str) -> list[tuple[object, ...]]:
        return [p.args for p in self.pushes if p.target == target]

    async def wait_for(self, target: str, count: int = 1) -> list[tuple[object, ...]]:
        async with asyncio.timeout(10):
            while len(self.of(target)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.of(target)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(tmp_path / "data") as started:
        yield started


@pytest.fixture
async def fanout(broker: EmbeddedBroker) -> AsyncIterator[FanOut]:
    async with FanOut(broker, FAST) as started:
        yield started


def event(event_id: str, value: str = "v", ts: int = 1) -> EventData:
    return EventData(id=event_id, timestamp=ts, value=value)


async def test_events_match_stream_and_event_wildcards(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    await writer.ensure_topic("cars")
    exact, by_stream, everything = Inbox(), Inbox(), Inbox()
    await fanout.subscribe(exact.subscriber, Kind.EVENT, "cars", "car-1", "Alert")
    await fanout.subscribe(by_stream.subscriber, Kind.EVENT, "cars", "car-2", "*")
    await fanout.subscribe(everything.subscriber, Kind.EVENT, "cars", "*", "*")
    await writer.write("cars", "car-1", [event("Alert", "a"), event("Lap", "b")])  # type: ignore[arg-type]
    await writer.write("cars", "car-2", event("Alert", "c"))
    got = await everything.wait_for("EventDataReceived", 3)
    assert [(a[0]["streamId"], a[0]["id"], a[0]["value"]) for a in got] == [  # type: ignore[index]
        ("car-1", "Alert", "a"),
        ("car-1", "Lap", "b"),
        ("car-2", "Alert", "c"),
    ]
    await by_stream.wait_for("EventDataReceived", 1)
    assert [a[0]["value"] for a in exact.of("EventDataReceived")] == ["a"]  # type: ignore[index]
    assert [a[0]["value"] for a in by_stream.of("EventDataReceived")] == ["c"]  # type: ignore[index]
    payload = got[0][0]
    assert payload == {  # type: ignore[comparison-overlap]
        "topicId": "cars",
        "topicName": "cars",
        "streamId": "car-1",
        "id": "Alert",
        "timestamp": 1,
        "value": "a",
        "tags": {},
    }


async def test_parameter_data_carries_only_subscribed_parameters(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    await writer.ensure_topic("f1")
    rpm, engine, other = Inbox(), Inbox(), Inbox()
    await fanout.subscribe(rpm.subscriber, Kind.PARAMETER, "f1", "*", "EngineRPM")
    await fanout.subscribe(engine.subscriber, Kind.PARAMETER, "f1", "*", "Engine*")
    await fanout.subscribe(other.subscriber, Kind.PARAMETER, "f1", "*", "Nope")
    data = TimeseriesData(
        timestamps=[10, 20],
        numeric_values={"EngineRPM": [1.0, 2.0], "EngineTemp": [90.0, 91.0], "Speed": [3.0, 4.0]},
        string_values={"Gear": ["1", "2"]},
        tag_values={"driver": ["a", "b"]},
    )
    await writer.write("f1", "s1", data)
    [(payload,)] = await rpm.wait_for("ParameterDataReceived")
    assert payload["numericValues"] == {"EngineRPM": [1.0, 2.0]}  # type: ignore[index]
    assert payload["stringValues"] == {}  # type: ignore[index]
    assert payload["tagValues"] == {"driver": ["a", "b"]}  # type: ignore[index]
    assert payload["timestamps"] == [10, 20]  # type: ignore[index]
    assert payload["streamId"] == "s1"  # type: ignore[index]
    [(payload,)] = await engine.wait_for("ParameterDataReceived")
    assert set(payload["numericValues"]) == {"EngineRPM", "EngineTemp"}  # type: ignore[index]
    assert other.of("ParameterDataReceived") == []


async def test_packages_include_raw_messages_and_subscribers_see_only_new_data(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    await writer.write("raw", "s0", event("Before"))  # written before the subscription
    inbox = Inbox()
    await fanout.subscribe(inbox.subscriber, Kind.PACKAGES, "raw")
    await writer.write("raw", "s1", [event("A", "x"), event("B", "y")])  # type: ignore[arg-type]
    await broker.produce("raw", [Record(b"not a quix message", key=b"s2")])
    got = await inbox.wait_for("PackageReceived", 2)
    first, second = (args[0] for args in got)
    assert first["type"] == "QuixStreams.Telemetry.Models.EventDataRaw[]"  # type: ignore[index]
    assert first["value"].startswith('[{"Timestamp":1')  # type: ignore[index]
    assert second["type"] == "System.Byte[]"  # type: ignore[index]
    assert second["value"] == "not a quix message"  # type: ignore[index]
    assert second["streamId"] == "s2"  # type: ignore[index]
    assert fanout.readers["raw"].undecodable == 1


async def test_active_streams_rebuilt_from_the_topic_and_changes_pushed(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    old = await writer.create_stream("tracks", StreamProperties(name="lap 1"))
    closed = await writer.create_stream("tracks", StreamProperties(name="gone"))
    await writer.close_stream("tracks", closed)
    inbox = Inbox()
    reader = await fanout.subscribe(inbox.subscriber, Kind.ACTIVE_STREAMS, "tracks")
    assert [(s["streamId"], s["name"]) for s in reader.active_streams()] == [(old, "lap 1")]
    new = await writer.create_stream("tracks", StreamProperties(name="lap 2"))
    defs = ParameterDefinitions(parameters=[ParameterDefinition(id="speed", name="Speed")])
    await writer.write("tracks", new, defs)
    await writer.close_stream("tracks", old)
    got = await inbox.wait_for("ActiveStreamsChanged", 4)
    assert [(s["streamId"], action) for s, action in got] == [  # type: ignore[index]
        (new, "AddUpdate"),
        (new, "AddUpdate"),
        (old, "AddUpdate"),  # status Closed ...
        (old, "Remove"),  # ... then gone
    ]
    assert got[2][0]["status"] == "Closed"  # type: ignore[index]
    assert got[1][0]["parameters"]["speed"]["name"] == "Speed"  # type: ignore[index]
    assert got[0][0]["topicName"] == "tracks"  # type: ignore[index]


async def test_unsubscribe_last_subscriber_stops_the_reader(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    await Writer(broker).ensure_topic("t")
    a, b = Inbox(), Inbox()
    await fanout.subscribe(a.subscriber, Kind.EVENT, "t", "*", "*")
    await fanout.subscribe(b.subscriber, Kind.PACKAGES, "t")
    task = fanout._tasks["t"]
    assert fanout.unsubscribe(a.subscriber, Kind.EVENT, "t", "*", "*")
    assert not fanout.unsubscribe(a.subscriber, Kind.EVENT, "t", "*", "*")
    assert "t" in fanout.readers and not task.done()
    fanout.unsubscribe_all(b.subscriber)
    assert "t" not in fanout.readers
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker._consumers == set()  # the reader's consumer was closed


async def test_unsubscribe_from_stream_removes_all_its_subscriptions(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    await writer.ensure_topic("u")
    inbox = Inbox()
    await fanout.subscribe(inbox.subscriber, Kind.EVENT, "u", "s1", "*")
    await fanout.subscribe(inbox.subscriber, Kind.PARAMETER, "u", "s1", "*")
    await fanout.subscribe(inbox.subscriber, Kind.EVENT, "u", "s2", "*")
    assert fanout.unsubscribe_stream(inbox.subscriber, "u", "s1") == 2
    await writer.write("u", "s1", event("A"))
    await writer.write("u", "s2", event("B"))
    got = await inbox.wait_for("EventDataReceived", 1)
    assert [args[0]["streamId"] for args in got] == ["s2"]  # type: ignore[index]


async def test_full_subscriber_does_not_stall_the_others(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    await writer.ensure_topic("busy")
    slow, fast = Inbox(limit=2), Inbox()
    await fanout.subscribe(slow.subscriber, Kind.EVENT, "busy", "*", "*")
    await fanout.subscribe(fast.subscriber, Kind.EVENT, "busy", "*", "*")
    for i in range(20):
        await writer.write("busy", "s", event("E", str(i)))
    got = await fast.wait_for("EventDataReceived", 20)
    assert [args[0]["value"] for args in got] == [str(i) for i in range(20)]  # type: ignore[index]
    assert len(slow.pushes) == 2
    assert slow.subscriber.closed  # the fan-out stopped feeding it at the first refusal


async def test_a_topic_created_after_the_subscription_is_read_from_its_start(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    inbox = Inbox()
    await fanout.subscribe(inbox.subscriber, Kind.EVENT, "later", "*", "*")
    await Writer(broker).write("later", "s", event("First"))
    [(payload,)] = await inbox.wait_for("EventDataReceived")
    assert payload["id"] == "First"  # type: ignore[index]


async def test_reader_failure_is_counted_and_restarted_without_loss(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    await writer.ensure_topic("flaky")
    inbox = Inbox()
    reader = await fanout.subscribe(inbox.subscriber, Kind.EVENT, "flaky", "*", "*")
    await writer.write("flaky", "s", event("E", "1"))
    await inbox.wait_for("EventDataReceived", 1)
    # Make the next handled record blow up once, as a bug or a broken broker read would.
    original = reader._handle
    calls = 0

    def failing_once(record: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        original(record)  # type: ignore[arg-type]

    reader._handle = failing_once  # type: ignore[method-assign]
    await writer.write("flaky", "s", event("E", "2"))
    await writer.write("flaky", "s", event("E", "3"))
    got = await inbox.wait_for("EventDataReceived", 3)
    assert [args[0]["value"] for args in got] == ["1", "2", "3"]  # type: ignore[index]
    assert reader.failures == 1
    assert isinstance(reader.last_error, RuntimeError)


async def test_reader_resumes_after_the_topic_is_deleted_and_recreated(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    writer = Writer(broker)
    await broker.create_topic("gone", TopicConfig(partitions=1))
    inbox = Inbox()
    reader = await fanout.subscribe(inbox.subscriber, Kind.EVENT, "gone", "*", "*")
    await broker.delete_topic("gone")
    writer._known.clear()
    async with asyncio.timeout(10):
        while reader.failures == 0:
            await asyncio.sleep(0.05)
        # keep writing until the restarted reader sees the recreated topic
        while not inbox.of("EventDataReceived"):
            await writer.write("gone", "s", event("Back"))
            await asyncio.sleep(0.1)
    assert inbox.of("EventDataReceived")[0][0]["id"] == "Back"  # type: ignore[index]


async def test_metrics_are_pushed_periodically(broker: EmbeddedBroker, fanout: FanOut) -> None:
    writer = Writer(broker)
    await writer.create_stream("m")
    inbox = Inbox()
    await fanout.subscribe(inbox.subscriber, Kind.METRICS, "m")
    await writer.write("m", "s", event("E"))
    got = await inbox.wait_for("TopicMetricsUpdated", 3)
    assert {"timestamp", "topicId", "topicName", "bytesPerSecond", "activeStreams"} == set(
        got[-1][0]  # type: ignore[arg-type]
    )
    assert any(args[0]["bytesPerSecond"] > 0 for args in got)  # type: ignore[index]
    assert got[-1][0]["activeStreams"] == 2  # type: ignore[index]


def test_topic_metrics_buckets_history_and_idle_intervals() -> None:
    metrics = TopicMetrics("t", interval=1.0, window=10.0)
    metrics.add(100, 1000.2)  # replayed history
    metrics.add(50, 1003.5)
    assert metrics.tick(active_streams=1, now=1005.1) is not None
    assert [(s.timestamp, s.bytes_per_second) for s in metrics.history()] == [
        (1001.0, 100.0),
        (1004.0, 50.0),
        (1005.0, 0.0),
    ]
    metrics.add(30, 1005.5)
    sample = metrics.tick(active_streams=2, now=1006.0)
    assert sample is not None and (sample.bytes_per_second, sample.active_streams) == (30.0, 2)
    for second in range(1007, 1030):
        metrics.tick(active_streams=0, now=second)
    assert len(metrics.history()) == 10  # bounded by the window


# -- batching: one hand-over per broker fetch and group of subscribers ---------------------------


class Batches:
    """A subscriber taking whole batches (``send_many``); `refuse` simulates a full queue."""

    def __init__(self, refuse: bool = False) -> None:
        self.batches: list[Pushes] = []
        self.refuse = refuse
        self.arrived = asyncio.Event()
        self.subscriber = Subscriber(self.send, "batches", self.send_many)

    def send(self, push: Push) -> bool:
        raise AssertionError("a subscriber with send_many gets no single pushes")

    def send_many(self, pushes: Pushes) -> bool:
        if self.refuse:
            return False
        self.batches.append(pushes)
        self.arrived.set()
        return True

    def values(self) -> list[tuple[str, str]]:
        return [
            (p.args[0]["streamId"], p.args[0]["id"]) for batch in self.batches for p in batch.items
        ]

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.values()) < count:
                self.arrived.clear()
                await self.arrived.wait()


def records(stream: str, *ids: str) -> list[Record]:
    return [Record(encode(event(i)), key=stream.encode()) for i in ids]


async def test_one_fetch_is_one_batch_per_subscriber_shared_by_its_group(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    await broker.create_topic("b", TopicConfig(partitions=1))
    a1, a2, b1, both = Batches(), Batches(), Batches(), Batches()
    for sub in (a1, a2):
        await fanout.subscribe(sub.subscriber, Kind.EVENT, "b", "s-a", "*")
    await fanout.subscribe(b1.subscriber, Kind.EVENT, "b", "*", "B*")
    await fanout.subscribe(both.subscriber, Kind.EVENT, "b", "s-a", "*")
    await fanout.subscribe(both.subscriber, Kind.EVENT, "b", "*", "B*")
    # one produce call: the reader finds all of it in one fetch
    await broker.produce("b", records("s-a", "A1", "B1", "A2") + records("s-b", "B2", "C"))
    await both.wait_for(4)
    await a1.wait_for(3)
    await b1.wait_for(2)
    assert a1.values() == a2.values() == [("s-a", "A1"), ("s-a", "B1"), ("s-a", "A2")]
    assert b1.values() == [("s-a", "B1"), ("s-b", "B2")]
    # a subscriber of two overlapping subscriptions gets each push once, in topic order
    assert both.values() == [("s-a", "A1"), ("s-a", "B1"), ("s-a", "A2"), ("s-b", "B2")]
    assert [len(s.batches) for s in (a1, a2, b1, both)] == [1, 1, 1, 1]
    assert a1.batches[0] is a2.batches[0]  # one Pushes (and serialisation) for the whole group
    assert a1.batches[0].items[1] is b1.batches[0].items[0]  # each push built once
    reader = fanout.readers["b"]
    assert (reader.batches, reader.groups, reader.delivered) == (1, 3, 12)


async def test_refusing_batch_subscriber_is_dropped_and_others_keep_getting_data(
    broker: EmbeddedBroker,
) -> None:
    await broker.create_topic("r", TopicConfig(partitions=1))
    # a chunk of 2: the hand-over yields to the loop between subscribers; nothing gets lost
    async with FanOut(broker, FanOutOptions(flush_chunk=2)) as fanout:
        full, fine = Batches(refuse=True), [Batches() for _ in range(5)]
        for sub in [full, *fine]:
            await fanout.subscribe(sub.subscriber, Kind.EVENT, "r", "*", "*")
        await broker.produce("r", records("s", "A", "B"))
        await broker.produce("r", records("s", "C"))
        for sub in fine:
            await sub.wait_for(3)
            assert sub.values() == [("s", "A"), ("s", "B"), ("s", "C")]
        async with asyncio.timeout(10):  # subscribers of one batch are served in no set order
            while not full.subscriber.closed:
                await asyncio.sleep(0.01)
        assert full.batches == []
        assert fanout.readers["r"].delivered == 15


async def test_parameter_subscribers_with_overlapping_patterns_get_their_union(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    await broker.create_topic("p", TopicConfig(partitions=1))
    rpm, temp, both = Batches(), Batches(), Batches()
    await fanout.subscribe(rpm.subscriber, Kind.PARAMETER, "p", "*", "RPM")
    await fanout.subscribe(temp.subscriber, Kind.PARAMETER, "p", "*", "Temp")
    await fanout.subscribe(both.subscriber, Kind.PARAMETER, "p", "*", "RPM")
    await fanout.subscribe(both.subscriber, Kind.PARAMETER, "p", "*", "Temp")
    data = [
        TimeseriesData(timestamps=[1], numeric_values={"RPM": [1.0], "Temp": [2.0]}),
        TimeseriesData(timestamps=[2], numeric_values={"Temp": [3.0]}),
    ]
    await broker.produce("p", [Record(encode(d), key=b"s") for d in data])

    def seen(sub: Batches) -> list[dict[str, list[float]]]:
        return [p.args[0]["numericValues"] for b in sub.batches for p in b.items]

    async with asyncio.timeout(10):
        while len(seen(both)) < 2 or len(seen(temp)) < 2 or not seen(rpm):
            await asyncio.sleep(0.01)
    assert seen(rpm) == [{"RPM": [1.0]}]
    assert seen(temp) == [{"Temp": [2.0]}, {"Temp": [3.0]}]
    assert seen(both) == [{"RPM": [1.0], "Temp": [2.0]}, {"Temp": [3.0]}]


async def test_every_record_read_is_reported_once(broker: EmbeddedBroker) -> None:
    # The gateway counts these as streamport_records_out{topic}.
    reads: list[tuple[str, int]] = []
    options = FanOutOptions(metrics_interval=0.2, on_read=lambda t, n: reads.append((t, n)))
    async with FanOut(broker, options) as fanout:
        writer = Writer(broker)
        await writer.ensure_topic("cars")
        inbox = Inbox()
        await fanout.subscribe(inbox.subscriber, Kind.EVENT, "cars", "*", "*")
        for n in range(3):
            await writer.write("cars", "car-1", event("Lap", str(n)))
        await inbox.wait_for("EventDataReceived", 3)
    assert {t for t, _ in reads} == {"cars"}
    assert sum(n for _, n in reads) == 3


async def test_records_landing_in_consecutive_loop_turns_go_out_as_one_batch(
    broker: EmbeddedBroker, fanout: FanOut
) -> None:
    # A burst of writes reaches the log one loop turn after another: one frame, not one each.
    await broker.create_topic("g", TopicConfig(partitions=1))
    sub = Batches()
    await fanout.subscribe(sub.subscriber, Kind.EVENT, "g", "*", "*")
    for n in range(5):
        await broker.produce("g", records("s", f"E{n}"))
        await asyncio.sleep(0)
    await sub.wait_for(5)
    assert [len(batch) for batch in sub.batches] == [5]
    assert sub.values() == [("s", f"E{n}") for n in range(5)]


@pytest.mark.parametrize("writing", [True, False])
async def test_a_burst_still_being_written_goes_out_as_one_batch(
    broker: EmbeddedBroker, writing: bool
) -> None:
    # Records landing milliseconds apart (idle loop turns between them): while busy() says
    # writes are under way the reader waits for them; without it, each goes out alone.
    state = {"busy": writing}
    options = dataclasses.replace(
        FAST, gather_seconds=30.0, busy=lambda topic: state["busy"] and topic == "w"
    )
    await broker.create_topic("w", TopicConfig(partitions=1))
    async with FanOut(broker, options) as fanout:
        sub = Batches()
        await fanout.subscribe(sub.subscriber, Kind.EVENT, "w", "*", "*")
        for n in range(3):
            await broker.produce("w", records("s", f"E{n}"))
            await asyncio.sleep(0.01)
        state["busy"] = False
        await sub.wait_for(3)
    assert [len(batch) for batch in sub.batches] == ([3] if writing else [1, 1, 1])
    assert sub.values() == [("s", f"E{n}") for n in range(3)]


async def test_a_write_path_that_stays_busy_holds_a_batch_back_no_longer_than_the_gather_bound(
    broker: EmbeddedBroker,
) -> None:
    options = dataclasses.replace(FAST, gather_seconds=0.05, busy=lambda topic: True)
    await broker.create_topic("x", TopicConfig(partitions=1))
    async with FanOut(broker, options) as fanout:
        sub = Batches()
        await fanout.subscribe(sub.subscriber, Kind.EVENT, "x", "*", "*")
        await broker.produce("x", records("s", "E0"))
        await sub.wait_for(1)  # 10 s at most: never held while busy() stays True
        await broker.produce("x", records("s", "E1"))
        await sub.wait_for(2)
    assert [len(batch) for batch in sub.batches] == [1, 1]
