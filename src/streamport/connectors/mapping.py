"""How a source turns outside data (JSON objects) into streamport records.

Three shapes (``format`` setting):

* ``events``: each object becomes a Quix ``EventData`` in the stream ``stream_id``: id = the
  value at ``event_id_field`` (else ``event_id``), value = the object as JSON, timestamp = the
  value at ``timestamp_field`` (ns, ms or s since the epoch, or ISO 8601) else now;
* ``timeseries``: each object becomes one row of ``TimeseriesData``: numbers are numeric
  parameters, strings string parameters (nested objects are flattened with ``.``);
* ``messages``: the object as JSON bytes, keyed by the value at ``key_field`` (if any).

Stream messages are written in the Quix envelope, keyed by the stream id, after a
``StreamProperties`` that names the stream (so Reader API clients see it).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, Field

from streamport.connectors.base import Ack, SourceRecord
from streamport.errors import ValidationError
from streamport.model import EventData, StreamProperties, TimeseriesData, encode

Format = Literal["events", "timeseries", "messages"]


class MappingSettings(BaseModel):
    """Mixed into a source's config."""

    format: Format = Field(default="events", description="events, timeseries or messages")
    stream_id: str | None = Field(
        default=None, description="stream of events/timeseries [default: the connector name]"
    )
    event_id: str = Field(default="record", description="event id when event_id_field is absent")
    event_id_field: str | None = Field(
        default=None, description="dotted path of the event id in each record"
    )
    timestamp_field: str | None = Field(
        default=None, description="dotted path of the record time (ns/ms/s epoch or ISO 8601)"
    )
    key_field: str | None = Field(
        default=None, description="dotted path of the message key (messages format)"
    )


def get_path(obj: Any, path: str | None) -> Any:
    """The value at dotted `path` in `obj` (``a.b.0.c``); `obj` itself for an empty path."""
    if not path:
        return obj
    current = obj
    for part in path.split("."):
        if isinstance(current, dict):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return None
            current = current[index]
        else:
            return None
    return current


def to_nanoseconds(value: Any) -> int:
    """Epoch ns from ns, ms or s numbers (by magnitude) or an ISO 8601 string."""
    if isinstance(value, bool):
        raise ValueError("a timestamp cannot be a boolean")
    if isinstance(value, int | float):
        magnitude = abs(value)
        if magnitude >= 1e17:
            return int(value)
        if magnitude >= 1e11:
            return int(value * 1_000_000)
        return int(value * 1_000_000_000)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return int(parsed.timestamp() * 1_000_000_000)
    raise ValueError(f"not a timestamp: {value!r}")


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


class Mapper:
    """Maps objects to `SourceRecord`s; `ValueError`/`ValidationError` mean a poison object."""

    def __init__(self, settings: MappingSettings, default_stream: str) -> None:
        self._s = settings
        self.stream_id = settings.stream_id or default_stream
        self._key = self.stream_id.encode()
        self._announced = False

    def _timestamp(self, obj: Any) -> int:
        raw = get_path(obj, self._s.timestamp_field) if self._s.timestamp_field else None
        return time.time_ns() if raw is None else to_nanoseconds(raw)

    def preamble(self) -> list[SourceRecord]:
        """The ``StreamProperties`` record, once, before the first stream message."""
        if self._s.format == "messages" or self._announced:
            return []
        self._announced = True
        return [SourceRecord(encode(StreamProperties(name=self.stream_id)), self._key)]

    def map(self, obj: Any, ack: Ack | None = None) -> SourceRecord:
        if self._s.format == "messages":
            raw_key = get_path(obj, self._s.key_field) if self._s.key_field else None
            key = None if raw_key is None else str(raw_key).encode()
            return SourceRecord(msgspec.json.encode(obj), key, ack=ack)
        if self._s.format == "events":
            event_id = self._s.event_id
            if self._s.event_id_field:
                found = get_path(obj, self._s.event_id_field)
                if found is None or isinstance(found, dict | list):
                    raise ValidationError(
                        f"record has no scalar at {self._s.event_id_field!r} for the event id",
                        field="event_id_field",
                    )
                event_id = str(found)
            event = EventData(
                id=event_id, timestamp=self._timestamp(obj), value=msgspec.json.encode(obj).decode()
            )
            event.validate()
            return SourceRecord(encode(event), self._key, ack=ack)
        if not isinstance(obj, dict):
            raise ValidationError("timeseries records must be JSON objects", field="format")
        stamp = self._timestamp(obj)
        numeric: dict[str, list[float | None]] = {}
        strings: dict[str, list[str | None]] = {}
        for name, value in _flatten(obj).items():
            if name == self._s.timestamp_field:
                continue
            if isinstance(value, bool | int | float):
                numeric[name] = [float(value)]
            elif isinstance(value, str):
                strings[name] = [value]
        data = TimeseriesData(timestamps=[stamp], numeric_values=numeric, string_values=strings)
        return SourceRecord(encode(data), self._key, ack=ack)
