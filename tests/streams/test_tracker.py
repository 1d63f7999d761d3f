from __future__ import annotations

from datetime import UTC, datetime

from streamport.model import (
    EventData,
    EventDefinition,
    EventDefinitions,
    EventLevel,
    ParameterDefinition,
    ParameterDefinitions,
    StreamEnd,
    StreamEndType,
    StreamProperties,
    TimeseriesData,
)
from streamport.streams.tracker import ActiveStreams, ChangeAction, StreamStatus

T0 = 1_700_000_000_000


def data(**columns: list[float | None]) -> TimeseriesData:
    return TimeseriesData(timestamps=[1], numeric_values=columns)


def test_first_message_adds_the_stream() -> None:
    tracker = ActiveStreams()
    changes = tracker.observe("cars", "car-1", data(speed=[1.0]), T0)
    assert [c.action for c in changes] == [ChangeAction.ADD_UPDATE]
    stream = changes[0].stream
    assert stream.stream_id == "car-1"
    assert stream.topic_name == "cars"
    assert stream.status is StreamStatus.RECEIVING
    assert stream.first_seen == stream.last_seen == stream.last_data == T0
    assert stream.parameters["speed"]["dataType"] == "Numeric"
    assert [s.stream_id for s in tracker.streams("cars")] == ["car-1"]
    assert tracker.streams("other") == []


def test_repeated_data_is_not_a_change_but_moves_last_seen() -> None:
    tracker = ActiveStreams()
    tracker.observe("cars", "car-1", data(speed=[1.0]), T0)
    assert tracker.observe("cars", "car-1", data(speed=[2.0]), T0 + 5) == []
    assert tracker.streams("cars")[0].last_seen == T0 + 5
    assert tracker.streams("cars")[0].last_data == T0 + 5
    changes = tracker.observe("cars", "car-1", data(rpm=[2.0]), T0 + 6)
    assert list(changes[0].stream.parameters) == ["speed", "rpm"]


def test_parameters_of_every_kind_and_events_seen_in_data() -> None:
    tracker = ActiveStreams()
    tracker.observe(
        "t",
        "s",
        TimeseriesData(
            timestamps=[1],
            string_values={"gear": ["D"]},
            binary_values={"img": [b"x"]},
            tag_values={"lap": ["1"]},
        ),
        T0,
    )
    changes = tracker.observe("t", "s", [EventData(id="Alert", timestamp=1)], T0)
    stream = changes[0].stream
    assert {k: v["dataType"] for k, v in stream.parameters.items()} == {
        "gear": "String",
        "img": "Binary",
    }
    assert list(stream.events) == ["Alert"]
    assert tracker.observe("t", "s", EventData(id="Alert", timestamp=2), T0) == []


def test_properties_and_definitions_update_the_stream() -> None:
    tracker = ActiveStreams()
    recorded = datetime(2021, 2, 6, 0, 15, 15, tzinfo=UTC)
    props = StreamProperties(
        name="Car 1",
        location="/sim",
        metadata={"k": "v"},
        parents=["p"],
        time_of_recording=recorded,
    )
    tracker.observe("t", "s", props, T0)
    tracker.observe("t", "s", data(rpm=[1.0]), T0)
    defs = ParameterDefinitions.from_flat(
        [
            ("/engine", ParameterDefinition(id="rpm", unit="rpm")),
            (None, ParameterDefinition(id="x")),
        ]
    )
    changes = tracker.observe("t", "s", defs, T0 + 1)
    stream = changes[0].stream
    assert stream.name == "Car 1"
    assert stream.parameters["rpm"]["unit"] == "rpm"
    assert stream.parameters["rpm"]["location"] == "/engine"
    assert stream.parameters["rpm"]["dataType"] == "Numeric"  # kept from the data
    assert stream.parameters["x"]["dataType"] == "Unknown"
    changes = tracker.observe("t", "s", data(x=[1.0]), T0 + 2)
    assert changes[0].stream.parameters["x"]["dataType"] == "Numeric"
    events = EventDefinitions.from_flat([("/a", EventDefinition(id="e", level=EventLevel.ERROR))])
    stream = tracker.observe("t", "s", events, T0 + 3)[0].stream
    assert stream.events["e"]["level"] == "Error"

    api = stream.to_api("ws-t")
    assert api["topicId"] == "ws-t"
    assert api["topicName"] == "t"
    assert api["streamId"] == "s"
    assert api["timeOfRecording"] == "2021-02-06T00:15:15Z"
    assert api["firstSeen"] == "2023-11-14T22:13:20Z"
    assert api["status"] == "Receiving"
    assert api["metadata"] == {"k": "v"}
    assert api["parents"] == ["p"]
    assert set(api) >= {"parameters", "events", "lastSeen", "lastData", "name", "location"}


def test_stream_end_reports_status_then_removes() -> None:
    tracker = ActiveStreams()
    tracker.observe("t", "s", data(x=[1.0]), T0)
    changes = tracker.observe("t", "s", StreamEnd(stream_end_type=StreamEndType.ABORTED), T0 + 1)
    assert [(c.action, c.stream.status) for c in changes] == [
        (ChangeAction.ADD_UPDATE, StreamStatus.ABORTED),
        (ChangeAction.REMOVE, StreamStatus.ABORTED),
    ]
    assert changes[1].to_api()["action"] == "Remove"
    assert changes[0].to_api()["stream"]["status"] == "Aborted"
    assert tracker.streams("t") == []


def test_expire_drops_idle_streams_only() -> None:
    tracker = ActiveStreams()
    tracker.observe("t", "old", data(x=[1.0]), T0)
    tracker.observe("t", "new", data(x=[1.0]), T0 + 50)
    removed = tracker.expire(now_ms=T0 + 100, idle_ms=60)
    assert [(c.action, c.stream.stream_id) for c in removed] == [(ChangeAction.REMOVE, "old")]
    assert [s.stream_id for s in tracker.streams("t")] == ["new"]


def test_streams_per_topic_are_bounded_evicting_the_least_recently_seen() -> None:
    tracker = ActiveStreams(max_streams=2)
    tracker.observe("t", "a", data(x=[1.0]), T0)
    tracker.observe("t", "b", data(x=[1.0]), T0 + 1)
    tracker.observe("t", "a", data(x=[1.0]), T0 + 2)  # a is now the most recent
    changes = tracker.observe("t", "c", data(x=[1.0]), T0 + 3)
    assert [(c.action, c.stream.stream_id) for c in changes] == [
        (ChangeAction.REMOVE, "b"),
        (ChangeAction.ADD_UPDATE, "c"),
    ]
    assert [s.stream_id for s in tracker.streams("t")] == ["a", "c"]
    tracker.observe("u", "z", data(x=[1.0]), T0)  # other topics have their own bound
    assert len(tracker.streams("t")) == 2


def test_ids_per_stream_are_bounded() -> None:
    tracker = ActiveStreams(max_ids=2)
    tracker.observe("t", "s", data(a=[1.0], b=[1.0], c=[1.0]), T0)
    assert list(tracker.streams("t")[0].parameters) == ["a", "b"]


def test_snapshots_do_not_change_afterwards() -> None:
    tracker = ActiveStreams()
    first = tracker.observe("t", "s", data(a=[1.0]), T0)[0].stream
    tracker.observe("t", "s", data(b=[1.0]), T0 + 1)
    tracker.observe("t", "s", StreamProperties(name="n"), T0 + 1)
    assert list(first.parameters) == ["a"]
    assert first.name is None
