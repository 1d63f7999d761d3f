"""Producing streams: `TopicProducer` -> `StreamProducer` -> properties, timeseries, events.

Example::

    with client.get_topic_producer("cars") as producer:
        stream = producer.create_stream()
        stream.properties.name = "lap 1"
        stream.timeseries.buffer.add_timestamp(datetime.now()).add_value("speed", 98.5).publish()
        stream.close()
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from streamport import model
from streamport.broker import Record
from streamport.client._core import Core
from streamport.client._data import EventData, TimeseriesData, TimeseriesDataTimestamp, to_raw
from streamport.client._encode import encode
from streamport.client._enums import EventLevel, StreamEndType
from streamport.client._sender import make_sender
from streamport.client._time import epoch_ns, to_ns
from streamport.model.data import check_id

if TYPE_CHECKING:
    import pandas as pd

    from streamport.client._buffer import TimeseriesBufferProducer


class TopicProducer:
    """Streams of one topic. ``with`` flushes and disposes it at the end."""

    def __init__(self, core: Core, topic: str) -> None:
        self._core = core
        self.topic = topic
        self._sender = make_sender(core, topic)
        self._streams: dict[str, StreamProducer] = {}
        self._lock = threading.Lock()
        self.on_disposed: Callable[[TopicProducer], None] | None = None
        self._disposed = False
        core.producers.append(self)

    def create_stream(self, stream_id: str | None = None) -> StreamProducer:
        stream_id = stream_id or str(uuid.uuid4())
        check_id(stream_id, "stream_id", "stream id")
        stream = StreamProducer(self, stream_id)
        with self._lock:
            self._streams[stream_id] = stream
        return stream

    def get_stream(self, stream_id: str) -> StreamProducer | None:
        return self._streams.get(stream_id)

    def get_or_create_stream(
        self,
        stream_id: str,
        on_stream_created: Callable[[StreamProducer], None] | None = None,
    ) -> StreamProducer:
        with self._lock:
            found = self._streams.get(stream_id)
        if found is not None:
            return found
        stream = self.create_stream(stream_id)
        if on_stream_created is not None:
            on_stream_created(stream)
        return stream

    def _forget(self, stream_id: str) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)

    def _send(self, stream_id: str, message: model.Message) -> None:
        self._sender.push(Record(value=encode(message), key=stream_id.encode()))

    def flush(self, timeout: float | None = None) -> None:
        """Publish what the streams buffer and wait until the broker acknowledged everything."""
        for stream in list(self._streams.values()):
            stream._release()
        self._sender.wait(timeout)

    def dispose(self) -> None:
        if self._disposed:
            return
        self._disposed = True
        try:
            if not self._core.disposed or not self._core.loop.in_loop():
                self.flush()
        finally:
            self._sender.close()
            if self in self._core.producers:
                self._core.producers.remove(self)
            if self.on_disposed is not None:
                self.on_disposed(self)

    def __enter__(self) -> TopicProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()


class StreamProducer:
    """One stream: its properties, timeseries and events, written in order."""

    def __init__(self, topic_producer: TopicProducer, stream_id: str) -> None:
        from streamport.client._buffer import TimeseriesBufferProducer

        self.topic = topic_producer
        self.stream_id = stream_id
        self._epoch = 0
        self._lock = threading.RLock()
        self.properties = StreamPropertiesProducer(self)
        self.timeseries = StreamTimeseriesProducer(self, TimeseriesBufferProducer(self))
        self.events = StreamEventsProducer(self)
        self.on_write_exception: Callable[[StreamProducer, BaseException], None] | None = None
        self._closed = False

    @property
    def epoch(self) -> datetime | int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: datetime | int) -> None:
        self._epoch = epoch_ns(value)
        self.timeseries.buffer.epoch = self._epoch
        self.events.epoch = self._epoch

    def _send(self, message: model.Message) -> None:
        """Send `message` after any pending properties and definitions (readers need them first)."""
        with self._lock:
            if self._closed:
                raise model_error(f"stream {self.stream_id!r} is closed")
            self.properties._send_if_changed()
            self.timeseries._send_definitions_if_changed()
            self.events._send_definitions_if_changed()
            self.topic._send(self.stream_id, message)

    def _release(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.timeseries.buffer._release()
            self.properties._send_if_changed()
            self.timeseries._send_definitions_if_changed()
            self.events._send_definitions_if_changed()

    def flush(self) -> None:
        self._release()
        self.topic._sender.wait()

    def close(self, end_type: StreamEndType = StreamEndType.Closed) -> None:
        """Publish what is buffered, then the stream's end; the stream takes no more data."""
        with self._lock:
            if self._closed:
                return
            self._release()
            self._send(model.StreamEnd(stream_end_type=StreamEndType(end_type).to_model()))
            self._closed = True
        self.topic._forget(self.stream_id)

    def __enter__(self) -> StreamProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def model_error(message: str) -> Exception:
    from streamport.errors import StreamportError

    return StreamportError(message)


class StreamPropertiesProducer:
    """Name, location, metadata, parents and time of recording; sent before the next data."""

    def __init__(self, stream: StreamProducer) -> None:
        self._stream = stream
        self._props = model.StreamProperties()
        self._changed = True  # the first message of a stream announces it
        self.flush_interval = 0  # kept for compatibility: properties go out with the next data

    def _set(self, **changes: Any) -> None:
        with self._stream._lock:
            for name, value in changes.items():
                setattr(self._props, name, value)
            self._changed = True

    @property
    def name(self) -> str | None:
        return self._props.name

    @name.setter
    def name(self, value: str | None) -> None:
        self._set(name=value)

    @property
    def location(self) -> str | None:
        return self._props.location

    @location.setter
    def location(self, value: str | None) -> None:
        self._set(location=value)

    @property
    def time_of_recording(self) -> datetime | None:
        return self._props.time_of_recording

    @time_of_recording.setter
    def time_of_recording(self, value: datetime | None) -> None:
        self._set(time_of_recording=value)

    @property
    def metadata(self) -> _Tracked:
        return _Tracked(self, self._props.metadata)

    @property
    def parents(self) -> _Tracked:
        return _Tracked(self, self._props.parents)

    def _send_if_changed(self) -> None:
        if self._changed:
            self._changed = False
            props = self._props
            copy = model.StreamProperties(
                name=props.name,
                location=props.location,
                metadata=dict(props.metadata),
                parents=list(props.parents),
                time_of_recording=props.time_of_recording,
            )
            self._stream.topic._send(self._stream.stream_id, copy)

    def flush(self) -> None:
        with self._stream._lock:
            self._changed = True
            self._send_if_changed()


class _Tracked:
    """A dict or list of the properties that marks them changed when modified."""

    def __init__(self, owner: StreamPropertiesProducer, target: Any) -> None:
        self._owner = owner
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if callable(attr) and name in (
            "append", "extend", "insert", "remove", "pop", "clear", "update", "setdefault",
        ):  # fmt: skip

            def changing(*args: Any, **kwargs: Any) -> Any:
                with self._owner._stream._lock:
                    self._owner._changed = True
                    return attr(*args, **kwargs)

            return changing
        return attr

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._owner._stream._lock:
            self._owner._changed = True
            self._target[key] = value

    def __getitem__(self, key: Any) -> Any:
        return self._target[key]

    def __delitem__(self, key: Any) -> None:
        with self._owner._stream._lock:
            self._owner._changed = True
            del self._target[key]

    def __len__(self) -> int:
        return len(self._target)

    def __iter__(self) -> Any:
        return iter(self._target)

    def __contains__(self, item: object) -> bool:
        return item in self._target

    def __eq__(self, other: object) -> bool:
        return bool(self._target == (other._target if isinstance(other, _Tracked) else other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._target)


class ParameterDefinitionBuilder:
    def __init__(self, owner: StreamTimeseriesProducer, location: str, definition: Any) -> None:
        self._owner = owner
        self._location = location
        self._definition: model.ParameterDefinition = definition

    def _changed(self) -> ParameterDefinitionBuilder:
        self._owner._definitions_changed = True
        return self

    def set_range(self, minimum_value: float, maximum_value: float) -> ParameterDefinitionBuilder:
        self._definition.minimum_value = minimum_value
        self._definition.maximum_value = maximum_value
        return self._changed()

    def set_unit(self, unit: str) -> ParameterDefinitionBuilder:
        self._definition.unit = unit
        return self._changed()

    def set_format(self, format: str) -> ParameterDefinitionBuilder:
        self._definition.format = format
        return self._changed()

    def set_custom_properties(self, custom_properties: str) -> ParameterDefinitionBuilder:
        self._definition.custom_properties = custom_properties
        return self._changed()

    def add_definition(
        self, parameter_id: str, name: str | None = None, description: str | None = None
    ) -> ParameterDefinitionBuilder:
        return self._owner._define(self._location, parameter_id, name, description)


class StreamTimeseriesProducer:
    def __init__(self, stream: StreamProducer, buffer: TimeseriesBufferProducer) -> None:
        self._stream = stream
        self.buffer = buffer
        self.default_location = "/"
        self._definitions: dict[str, tuple[str, model.ParameterDefinition]] = {}
        self._definitions_changed = False

    def publish(
        self,
        data: TimeseriesData | model.TimeseriesData | TimeseriesDataTimestamp | pd.DataFrame,
    ) -> None:
        """Publish `data` now (not through the buffer)."""
        self._stream._send(to_raw(data))

    def add_location(self, location: str) -> _LocationBuilder:
        return _LocationBuilder(self, model.normalize_location(location))

    def add_definition(
        self, parameter_id: str, name: str | None = None, description: str | None = None
    ) -> ParameterDefinitionBuilder:
        return self._define(self.default_location, parameter_id, name, description)

    def _define(
        self, location: str, parameter_id: str, name: str | None, description: str | None
    ) -> ParameterDefinitionBuilder:
        check_id(parameter_id, "parameter_id", "parameter id")
        definition = model.ParameterDefinition(id=parameter_id, name=name, description=description)
        with self._stream._lock:
            self._definitions[parameter_id] = (model.normalize_location(location), definition)
            self._definitions_changed = True
        return ParameterDefinitionBuilder(self, location, definition)

    def _send_definitions_if_changed(self) -> None:
        if self._definitions_changed:
            self._definitions_changed = False
            defs = model.ParameterDefinitions.from_flat(
                (loc, model.ParameterDefinition(**_fields(d)))
                for loc, d in self._definitions.values()
            )
            self._stream.topic._send(self._stream.stream_id, defs)

    def flush(self) -> None:
        self._stream.flush()


class _LocationBuilder:
    def __init__(self, owner: StreamTimeseriesProducer, location: str) -> None:
        self._owner = owner
        self._location = location

    def add_definition(
        self, parameter_id: str, name: str | None = None, description: str | None = None
    ) -> ParameterDefinitionBuilder:
        return self._owner._define(self._location, parameter_id, name, description)


def _fields(struct: Any) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


class EventDefinitionBuilder:
    def __init__(self, owner: StreamEventsProducer, location: str, definition: Any) -> None:
        self._owner = owner
        self._location = location
        self._definition: model.EventDefinition = definition

    def set_level(self, level: EventLevel | int) -> EventDefinitionBuilder:
        self._definition.level = EventLevel(level).to_model()
        self._owner._definitions_changed = True
        return self

    def set_custom_properties(self, custom_properties: str) -> EventDefinitionBuilder:
        self._definition.custom_properties = custom_properties
        self._owner._definitions_changed = True
        return self

    def add_definition(
        self, event_id: str, name: str | None = None, description: str | None = None
    ) -> EventDefinitionBuilder:
        return self._owner._define(self._location, event_id, name, description)


class EventDataBuilder:
    """Events at one timestamp: each ``add_value(event_id, value)`` is one event."""

    def __init__(self, owner: StreamEventsProducer, timestamp: int) -> None:
        self._owner = owner
        self._timestamp = timestamp
        self._values: list[tuple[str, str]] = []
        self._tags: dict[str, str] = {}

    def add_value(self, event_id: str, value: str) -> EventDataBuilder:
        self._values.append((event_id, value))
        return self

    def add_tag(self, tag_id: str, value: str) -> EventDataBuilder:
        self._tags[tag_id] = value
        return self

    def add_tags(self, tags: dict[str, str]) -> EventDataBuilder:
        self._tags.update(tags)
        return self

    def publish(self) -> None:
        tags = {**self._owner.default_tags, **self._tags}
        events = [
            model.EventData(id=i, timestamp=self._timestamp, value=v, tags=dict(tags))
            for i, v in self._values
        ]
        self._owner._publish_raw(events)


class StreamEventsProducer:
    def __init__(self, stream: StreamProducer) -> None:
        self._stream = stream
        self.default_tags: dict[str, str] = {}
        self.default_location = "/"
        self.epoch = 0
        self._definitions: dict[str, tuple[str, model.EventDefinition]] = {}
        self._definitions_changed = False

    def add_timestamp(self, time: datetime | timedelta) -> EventDataBuilder:
        return EventDataBuilder(self, to_ns(time, self.epoch))

    def add_timestamp_milliseconds(self, milliseconds: int) -> EventDataBuilder:
        return EventDataBuilder(self, self.epoch + milliseconds * 1_000_000)

    def add_timestamp_nanoseconds(self, nanoseconds: int) -> EventDataBuilder:
        return EventDataBuilder(self, self.epoch + nanoseconds)

    def publish(
        self, data: EventData | model.EventData | list[EventData] | pd.DataFrame, **columns: str
    ) -> None:
        """Publish one event, a list, or a DataFrame (columns ``id, timestamp, value``; rename
        them with e.g. ``id="event_id"``)."""
        items: list[model.EventData]
        if isinstance(data, EventData):
            items = [data.to_raw()]
        elif isinstance(data, model.EventData):
            items = [data]
        elif isinstance(data, list):
            items = [d.to_raw() if isinstance(d, EventData) else d for d in data]
        else:
            from streamport.client._pandas import events_from_dataframe

            items = events_from_dataframe(data, **columns)
        for event in items:
            if self.default_tags:
                event.tags = {**self.default_tags, **event.tags}
        self._publish_raw(items)

    def _publish_raw(self, events: list[model.EventData]) -> None:
        for index, event in enumerate(events):
            event.validate(f"[{index}]")
        if len(events) == 1:
            self._stream._send(events[0])
        elif events:
            self._stream._send(events)

    def add_location(self, location: str) -> _EventLocationBuilder:
        return _EventLocationBuilder(self, model.normalize_location(location))

    def add_definition(
        self, event_id: str, name: str | None = None, description: str | None = None
    ) -> EventDefinitionBuilder:
        return self._define(self.default_location, event_id, name, description)

    def _define(
        self, location: str, event_id: str, name: str | None, description: str | None
    ) -> EventDefinitionBuilder:
        check_id(event_id, "event_id", "event id")
        definition = model.EventDefinition(id=event_id, name=name, description=description)
        with self._stream._lock:
            self._definitions[event_id] = (model.normalize_location(location), definition)
            self._definitions_changed = True
        return EventDefinitionBuilder(self, location, definition)

    def _send_definitions_if_changed(self) -> None:
        if self._definitions_changed:
            self._definitions_changed = False
            defs = model.EventDefinitions.from_flat(
                (loc, model.EventDefinition(**_fields(d))) for loc, d in self._definitions.values()
            )
            self._stream.topic._send(self._stream.stream_id, defs)

    def flush(self) -> None:
        self._stream.flush()


class _EventLocationBuilder:
    def __init__(self, owner: StreamEventsProducer, location: str) -> None:
        self._owner = owner
        self._location = location

    def add_definition(
        self, event_id: str, name: str | None = None, description: str | None = None
    ) -> EventDefinitionBuilder:
        return self._owner._define(self._location, event_id, name, description)
