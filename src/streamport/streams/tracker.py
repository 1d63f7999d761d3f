"""Active streams: what the Reader API's ``SubscribeToActiveStreams`` reports, derived from a topic.

Every gateway derives the same state from the same messages (properties, definitions, data,
StreamEnd), so no gateway holds state another needs. :meth:`ActiveStreams.observe` is fed each
decoded message of a topic and returns the changes to push as ``ActiveStreamsChanged``:

* a new stream, new properties or definitions, a parameter or event id not seen before -> one
  ``AddUpdate``; data that only moves ``lastSeen`` / ``lastData`` returns no change (the hub
  would otherwise send one notification per message);
* a ``StreamEnd`` -> ``AddUpdate`` with status ``Closed`` / ``Aborted`` / ``Terminated``, then
  ``Remove``; the stream is forgotten.

Bounds: at most ``max_streams`` per topic - when a new stream would exceed it, the stream seen
least recently is evicted (returned as a ``Remove``); at most ``max_ids`` parameters and as many
events per stream - further ids are not listed (their data still updates ``lastData``).

Times are epoch milliseconds as given by the caller (the broker's record timestamps).

Example::

    tracker = ActiveStreams()
    changes = tracker.observe("cars", "car-1", StreamProperties(name="Car 1"), 1_700_000_000_000)
    assert changes[0].action is ChangeAction.ADD_UPDATE
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from streamport.model import (
    EventData,
    EventDefinitions,
    Message,
    ParameterDefinition,
    ParameterDefinitions,
    StreamEnd,
    StreamProperties,
    TimeseriesData,
    format_datetime,
)
from streamport.model.api import event_definition_to_api, parameter_definition_to_api

__all__ = [
    "DEFAULT_MAX_IDS",
    "DEFAULT_MAX_STREAMS",
    "ActiveStream",
    "ActiveStreams",
    "ChangeAction",
    "StreamChange",
    "StreamStatus",
]

DEFAULT_MAX_STREAMS = 10_000
DEFAULT_MAX_IDS = 10_000


class StreamStatus(enum.Enum):
    RECEIVING = "Receiving"
    CLOSED = "Closed"
    ABORTED = "Aborted"
    TERMINATED = "Terminated"


class ChangeAction(enum.Enum):
    ADD_UPDATE = "AddUpdate"
    REMOVE = "Remove"


@dataclass
class ActiveStream:
    """One stream of a topic as the Reader API describes it.

    ``parameters`` / ``events`` map an id to its Reader API definition dict (camelCase); a
    parameter seen only in data has ``dataType`` from the data and the other fields ``None``.
    """

    stream_id: str
    topic_name: str
    first_seen: int
    last_seen: int
    name: str | None = None
    location: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    time_of_recording: datetime | None = None
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: StreamStatus = StreamStatus.RECEIVING
    last_data: int | None = None

    def snapshot(self) -> ActiveStream:
        """A copy that later observations do not change (safe to hand to other tasks)."""
        return replace(
            self,
            metadata=dict(self.metadata),
            parents=list(self.parents),
            parameters={k: dict(v) for k, v in self.parameters.items()},
            events={k: dict(v) for k, v in self.events.items()},
        )

    def to_api(self, topic_id: str | None = None) -> dict[str, Any]:
        """The camelCase ``ActiveStream`` of the Reader API; times are ISO-8601 UTC."""
        recorded = self.time_of_recording
        return {
            "streamId": self.stream_id,
            "topicId": topic_id if topic_id is not None else self.topic_name,
            "topicName": self.topic_name,
            "name": self.name,
            "location": self.location,
            "metadata": dict(self.metadata),
            "parents": list(self.parents),
            "timeOfRecording": None if recorded is None else format_datetime(recorded),
            "parameters": {k: dict(v) for k, v in self.parameters.items()},
            "events": {k: dict(v) for k, v in self.events.items()},
            "firstSeen": _iso_ms(self.first_seen),
            "lastSeen": _iso_ms(self.last_seen),
            "status": self.status.value,
            "lastData": None if self.last_data is None else _iso_ms(self.last_data),
        }


@dataclass(frozen=True)
class StreamChange:
    """One ``ActiveStreamsChanged(stream, action)`` notification."""

    action: ChangeAction
    stream: ActiveStream

    def to_api(self, topic_id: str | None = None) -> dict[str, Any]:
        return {"stream": self.stream.to_api(topic_id), "action": self.action.value}


def _iso_ms(epoch_ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))


_END_STATUS = {
    "Closed": StreamStatus.CLOSED,
    "Aborted": StreamStatus.ABORTED,
    "Terminated": StreamStatus.TERMINATED,
}


def _parameter_seen_in_data(pid: str, data_type: str) -> dict[str, Any]:
    entry = parameter_definition_to_api("/", ParameterDefinition(id=pid))
    entry.update(location=None, dataType=data_type)
    return entry


class ActiveStreams:
    """The active streams of every topic fed to :meth:`observe`. Not thread-safe; one owner."""

    def __init__(self, max_streams: int = DEFAULT_MAX_STREAMS, max_ids: int = DEFAULT_MAX_IDS):
        if max_streams < 1 or max_ids < 0:
            raise ValueError("max_streams must be at least 1 and max_ids at least 0")
        self._max_streams = max_streams
        self._max_ids = max_ids
        # Per topic, streams in order of last observation (least recent first) for eviction.
        self._topics: dict[str, OrderedDict[str, ActiveStream]] = {}

    def streams(self, topic: str) -> list[ActiveStream]:
        """Snapshots of the current streams of `topic`, least recently seen first."""
        return [s.snapshot() for s in self._topics.get(topic, {}).values()]

    def topics(self) -> list[str]:
        return [topic for topic, streams in self._topics.items() if streams]

    def observe(
        self, topic: str, stream_id: str, message: Message, timestamp_ms: int
    ) -> list[StreamChange]:
        """Fold one message of `stream_id` into the state; return the changes to publish."""
        streams = self._topics.setdefault(topic, OrderedDict())
        changes: list[StreamChange] = []
        stream = streams.get(stream_id)
        changed = stream is None
        if stream is None:
            while len(streams) >= self._max_streams:
                _, evicted = streams.popitem(last=False)
                changes.append(StreamChange(ChangeAction.REMOVE, evicted.snapshot()))
            stream = ActiveStream(
                stream_id=stream_id,
                topic_name=topic,
                first_seen=timestamp_ms,
                last_seen=timestamp_ms,
            )
            streams[stream_id] = stream
        else:
            streams.move_to_end(stream_id)
            stream.last_seen = max(stream.last_seen, timestamp_ms)

        if isinstance(message, TimeseriesData):
            stream.last_data = max(stream.last_data or timestamp_ms, timestamp_ms)
            for pid, data_type in message.parameter_ids().items():
                changed |= self._see_parameter(stream, pid, data_type)
        elif isinstance(message, EventData | list):
            stream.last_data = max(stream.last_data or timestamp_ms, timestamp_ms)
            for event in message if isinstance(message, list) else [message]:
                changed |= self._see_event(stream, event.id)
        elif isinstance(message, StreamProperties):
            stream.name = message.name
            stream.location = message.location
            stream.metadata = dict(message.metadata)
            stream.parents = list(message.parents)
            stream.time_of_recording = message.time_of_recording
            changed = True
        elif isinstance(message, ParameterDefinitions):
            for location, definition in message.flatten():
                known = stream.parameters.get(definition.id)
                if known is None and len(stream.parameters) >= self._max_ids:
                    continue
                entry = parameter_definition_to_api(location, definition)
                entry["dataType"] = known["dataType"] if known else "Unknown"
                stream.parameters[definition.id] = entry
            changed = True
        elif isinstance(message, EventDefinitions):
            for event_location, event_definition in message.flatten():
                eid = event_definition.id
                if eid not in stream.events and len(stream.events) >= self._max_ids:
                    continue
                stream.events[eid] = event_definition_to_api(event_location, event_definition)
            changed = True
        elif isinstance(message, StreamEnd):
            stream.status = _END_STATUS[message.stream_end_type.value]
            del streams[stream_id]
            changes.append(StreamChange(ChangeAction.ADD_UPDATE, stream.snapshot()))
            changes.append(StreamChange(ChangeAction.REMOVE, stream.snapshot()))
            return changes

        if changed:
            changes.append(StreamChange(ChangeAction.ADD_UPDATE, stream.snapshot()))
        return changes

    def expire(self, now_ms: int, idle_ms: int) -> list[StreamChange]:
        """Forget streams not seen for more than `idle_ms`; return their ``Remove`` changes."""
        changes: list[StreamChange] = []
        for streams in self._topics.values():
            idle = [sid for sid, s in streams.items() if now_ms - s.last_seen > idle_ms]
            for sid in idle:
                changes.append(StreamChange(ChangeAction.REMOVE, streams.pop(sid).snapshot()))
        return changes

    def forget_topic(self, topic: str) -> list[StreamChange]:
        """Drop every stream of `topic` (e.g. the topic was deleted)."""
        streams = self._topics.pop(topic, OrderedDict())
        return [StreamChange(ChangeAction.REMOVE, s.snapshot()) for s in streams.values()]

    def _see_parameter(self, stream: ActiveStream, pid: str, data_type: str) -> bool:
        known = stream.parameters.get(pid)
        if known is None:
            if len(stream.parameters) >= self._max_ids:
                return False
            stream.parameters[pid] = _parameter_seen_in_data(pid, data_type)
            return True
        if known.get("dataType") == "Unknown":
            known["dataType"] = data_type
            return True
        return False

    def _see_event(self, stream: ActiveStream, event_id: str) -> bool:
        if event_id in stream.events or len(stream.events) >= self._max_ids:
            return False
        stream.events[event_id] = {
            "id": event_id,
            "name": None,
            "description": None,
            "customProperties": None,
            "level": "Information",
            "location": None,
        }
        return True
