"""StreamingClient against a real gateway (embedded broker): produce, consume, commit, auth."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from streamport import (
    App,
    AutoOffsetReset,
    CancellationTokenSource,
    CommitMode,
    EventData,
    EventLevel,
    StreamEndType,
    StreamingClient,
    TimeseriesData,
)
from streamport.client import StreamConsumer
from streamport.errors import Forbidden, Unauthenticated
from tests.client.conftest import ThreadGateway

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError("condition not met in time")


def topic() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


class Collector:
    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.data: list[TimeseriesData] = []
        self.events: list[EventData] = []
        self.closed: list[StreamEndType] = []
        self.names: list[str | None] = []
        self.streams: list[StreamConsumer] = []

    def on_stream(self, stream: StreamConsumer) -> None:
        self.streams.append(stream)
        stream.timeseries.on_dataframe_received = lambda s, df: self.frames.append(df)
        stream.timeseries.on_data_received = lambda s, d: self.data.append(d)
        stream.events.on_data_received = lambda s, e: self.events.append(e)
        stream.properties.on_changed = lambda s: self.names.append(s.properties.name)
        stream.on_stream_closed = lambda s, end: self.closed.append(end)


def test_round_trip_buffer_events_properties_definitions(sdk_gateway: ThreadGateway) -> None:
    name = topic()
    with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
        seen = Collector()
        consumer = client.get_topic_consumer(name, "g1", auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_stream_received = seen.on_stream
        producer = client.get_topic_producer(name)
        stream = producer.create_stream("car-1")
        stream.properties.name = "lap 1"
        stream.properties.metadata["driver"] = "ann"
        stream.timeseries.add_definition("speed", "Speed").set_range(0, 300).set_unit("km/h")
        stream.events.add_definition("alert").set_level(EventLevel.Critical)
        buffer = stream.timeseries.buffer
        buffer.packet_size = 3
        buffer.default_tags = {"team": "red"}
        for i in range(6):
            buffer.add_timestamp_nanoseconds(1000 + i).add_value("speed", float(i)).add_value(
                "gear", "D"
            ).add_tag("lap", str(i // 3)).publish()
        stream.events.add_timestamp_nanoseconds(5000).add_value("alert", "overheat").add_tag(
            "sev", "high"
        ).publish()
        stream.close(StreamEndType.Aborted)
        producer.flush()
        consumer.subscribe()
        wait_for(lambda: len(seen.closed) == 1)
        assert [len(f) for f in seen.frames] == [3, 3]
        first = seen.frames[0]
        assert list(first["timestamp"]) == [1000, 1001, 1002]
        assert list(first["speed"]) == [0.0, 1.0, 2.0]
        assert list(first["gear"]) == ["D", "D", "D"]
        assert list(first["TAG__team"]) == ["red"] * 3
        assert list(first["TAG__lap"]) == ["0"] * 3
        assert seen.names == ["lap 1"]
        assert seen.streams[0].properties.metadata == {"driver": "ann"}
        (definition,) = seen.streams[0].timeseries.definitions
        assert (definition.id, definition.unit, definition.maximum_value) == ("speed", "km/h", 300)
        assert seen.streams[0].events.definitions[0].level.value == "Critical"
        (event,) = seen.events
        assert (event.id, event.value, event.tags, event.timestamp_nanoseconds) == (
            "alert",
            "overheat",
            {"sev": "high"},
            5000,
        )
        assert seen.closed == [StreamEndType.Aborted]
        assert seen.data[1].timestamps[0].parameters["speed"].numeric_value == 3.0
        assert client.error_count == 0


def test_dataframe_round_trip_is_lossless(sdk_gateway: ThreadGateway) -> None:
    name = topic()
    df = pd.DataFrame(
        {
            "timestamp": [1, 2, 3],
            "speed": [1.5, float("nan"), -3.25],
            "count": [1, 2, 3],
            "label": ["a", None, "c"],
            "TAG__car": ["x", "y", None],
        }
    )
    got: list[pd.DataFrame] = []
    with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
        consumer = client.get_topic_consumer(name, None, auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_stream_received = lambda s: setattr(
            s.timeseries, "on_dataframe_received", lambda _, frame: got.append(frame)
        )
        consumer.subscribe()
        with client.get_topic_producer(name) as producer:
            producer.create_stream().timeseries.publish(df)
        wait_for(lambda: len(got) == 1)
    back = got[0]
    pd.testing.assert_frame_equal(back[df.columns], df, check_dtype=False, check_column_type=False)


def test_commits_resume_the_group_and_manual_mode_does_not_commit(
    sdk_gateway: ThreadGateway,
) -> None:
    name = topic()
    with (
        StreamingClient(sdk_gateway.url, sdk_gateway.token) as client,
        client.get_topic_producer(name) as producer,
    ):
        stream = producer.create_stream("s")
        for i in range(10):
            stream.events.add_timestamp_nanoseconds(i).add_value("e", str(i)).publish()

    def read(group: str, mode: Any, expect: int) -> list[str]:
        values: list[str] = []
        with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
            consumer = client.get_topic_consumer(
                name, group, commit_settings=mode, auto_offset_reset=AutoOffsetReset.Earliest
            )
            consumer.on_stream_received = lambda s: setattr(
                s.events, "on_data_received", lambda _, e: values.append(e.value)
            )
            consumer.subscribe()
            wait_for(lambda: len(values) >= expect)
            consumer.unsubscribe()  # commits what was processed in automatic mode
        return values

    assert read("auto", None, 10) == [str(i) for i in range(10)]
    # everything was committed: a new client of the group waits for new data only
    with (
        StreamingClient(sdk_gateway.url, sdk_gateway.token) as client,
        client.get_topic_producer(name) as producer,
    ):
        stream = producer.get_or_create_stream("s")
        stream.events.add_timestamp_nanoseconds(10).add_value("e", "10").publish()
    assert read("auto", None, 1) == ["10"]
    assert read("manual", CommitMode.Manual, 11)[:2] == ["0", "1"]
    assert read("manual", CommitMode.Manual, 11)[:2] == ["0", "1"]  # nothing was committed


def test_callback_errors_reach_the_hook_and_stop_nothing(sdk_gateway: ThreadGateway) -> None:
    name = topic()
    errors: list[BaseException] = []
    values: list[str] = []

    def on_event(stream: StreamConsumer, event: EventData) -> None:
        if event.value == "bad":
            raise ValueError("boom")
        values.append(event.value)

    with StreamingClient(sdk_gateway.url, sdk_gateway.token, on_error=errors.append) as client:
        consumer = client.get_topic_consumer(name, "g", auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_stream_received = lambda s: setattr(s.events, "on_data_received", on_event)
        with client.get_topic_producer(name) as producer:
            stream = producer.create_stream()
            for value in ("a", "bad", "c"):
                stream.events.add_timestamp_nanoseconds(1).add_value("e", value).publish()
        consumer.subscribe()
        wait_for(lambda: values == ["a", "c"])
    assert [str(e) for e in errors] == ["boom"]


def test_raw_producer_and_consumer(sdk_gateway: ThreadGateway) -> None:
    from streamport import RawMessage

    name = topic()
    got: list[RawMessage] = []
    with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
        consumer = client.get_raw_topic_consumer(name, auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_message_received = lambda c, m: got.append(m)
        consumer.subscribe()
        with client.get_raw_topic_producer(name) as producer:
            message = RawMessage(b"hello")
            message.key = b"k1"
            message.metadata = {"h": "v"}
            producer.publish(message)
            producer.publish(b"plain")
        wait_for(lambda: len(got) == 2)
    assert [(m.key, m.value, m.metadata) for m in got] == [
        (b"k1", b"hello", {"h": "v"}),
        (None, b"plain", {}),
    ]


def test_app_run_subscribes_and_stops_on_the_token(sdk_gateway: ThreadGateway) -> None:
    name = topic()
    values: list[str] = []
    cts = CancellationTokenSource()
    client = StreamingClient(sdk_gateway.url, sdk_gateway.token)
    consumer = client.get_topic_consumer(name, "app", auto_offset_reset=AutoOffsetReset.Earliest)

    def on_event(stream: StreamConsumer, event: EventData) -> None:
        values.append(event.value)
        cts.cancel()

    consumer.on_stream_received = lambda s: setattr(s.events, "on_data_received", on_event)
    with (
        StreamingClient(sdk_gateway.url, sdk_gateway.token) as writer,
        writer.get_topic_producer(name) as producer,
    ):
        producer.create_stream().events.add_timestamp_nanoseconds(1).add_value("e", "x").publish()
    App.run(cancellation_token=cts.token, timeout=60)
    assert values == ["x"]
    assert client._core.disposed  # App.run disposed the client and joined its thread


def test_token_and_scopes_are_checked(sdk_gateway: ThreadGateway) -> None:
    with pytest.raises(Unauthenticated):
        StreamingClient(sdk_gateway.url, "sp_wrong").get_topic_producer("x")
    reader = sdk_gateway.tokens.create("reader", ["read:cars"])  # type: ignore[attr-defined]
    with StreamingClient(sdk_gateway.url, reader) as client:
        producer = client.get_topic_producer("cars")
        # the refused write is raised by the next publish or flush, whichever comes first
        with pytest.raises(Exception, match="lacks the scope 'write:cars'") as info:
            stream = producer.create_stream()
            stream.events.add_timestamp_nanoseconds(1).add_value("e", "x").publish()
            producer.flush()
        assert isinstance(info.value.__cause__, Forbidden)
        producer._disposed = True  # already failed; nothing left to flush


def test_url_and_token_default_to_the_environment(
    sdk_gateway: ThreadGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMPORT_URL", sdk_gateway.url)
    monkeypatch.setenv("STREAMPORT_TOKEN", sdk_gateway.token)
    with StreamingClient() as client, client.get_topic_producer(topic()) as producer:
        producer.create_stream().events.add_timestamp_nanoseconds(1).add_value("e", "x").publish()
