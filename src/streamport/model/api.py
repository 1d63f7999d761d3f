"""Bodies of the Writer API (HTTP and SignalR) -> models, and models -> Reader API payloads.

Quix documents camelCase bodies while its samples send PascalCase, so the field names of a model
(``timestamps``, ``numericValues``, ``timeOfRecording``...) bind case-insensitively. Keys that are
data - parameter ids, metadata keys, tag names - are kept exactly. Unknown fields are ignored;
``null`` for an optional field means "absent". Every problem raises
:class:`~streamport.errors.ValidationError` with ``field`` set, e.g. ``timestamps[1]`` or
``numericValues.speed``.

The optional ``epoch`` of parameter data is added to each timestamp and the result has epoch 0,
the form written to topics.

Example::

    data = parse_parameter_data(b'{"Timestamps":[1,2],"NumericValues":{"speed":[1.5,2]}}')
    assert data.numeric_values == {"speed": [1.5, 2.0]}
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, overload

import msgspec

from streamport.errors import ValidationError
from streamport.model.data import EventData, StreamEnd, StreamProperties, TimeseriesData, check_id
from streamport.model.definitions import (
    EventDefinition,
    EventDefinitions,
    EventLevel,
    ParameterDefinition,
    ParameterDefinitions,
)

__all__ = [
    "format_datetime",
    "parse_event_data",
    "parse_event_definitions",
    "parse_parameter_data",
    "parse_parameter_definitions",
    "parse_stream_details",
    "to_api",
]


# ---------------------------------------------------------------------------------------------
# Internal camelCase shapes; msgspec.convert checks the types and reports the path of a mistake.


class _ParameterData(msgspec.Struct, rename="camel"):
    epoch: int | None = None
    timestamps: list[int] | None = None
    numeric_values: dict[str, list[float | None]] | None = None
    string_values: dict[str, list[str | None]] | None = None
    binary_values: dict[str, list[bytes | None]] | None = None
    tag_values: dict[str, list[str | None]] | None = None


class _Event(msgspec.Struct, rename="camel"):
    id: str
    timestamp: int
    value: str | None = None
    tags: dict[str, str] | None = None


class _StreamDetails(msgspec.Struct, rename="camel"):
    name: str | None = None
    location: str | None = None
    metadata: dict[str, str] | None = None
    parents: list[str] | None = None
    time_of_recording: datetime | None = None


class _ParameterDefinition(msgspec.Struct, rename="camel"):
    id: str
    name: str | None = None
    description: str | None = None
    minimum_value: float | None = None
    maximum_value: float | None = None
    unit: str | None = None
    format: str | None = None
    custom_properties: str | None = None
    location: str | None = None


class _EventDefinition(msgspec.Struct, rename="camel"):
    id: str
    name: str | None = None
    description: str | None = None
    custom_properties: str | None = None
    location: str | None = None
    level: Any = None


def _names(shape: type[msgspec.Struct]) -> dict[str, str]:
    return {name.lower(): name for name in shape.__struct_encode_fields__}


_PARAMETER_DATA = _names(_ParameterData)
_EVENT = _names(_Event)
_STREAM_DETAILS = _names(_StreamDetails)
_PARAMETER_DEFINITION = _names(_ParameterDefinition)
_EVENT_DEFINITION = _names(_EventDefinition)


def _load(body: object) -> Any:
    """Bytes are JSON text; anything else is an already-decoded JSON value (hub arguments)."""
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ValidationError(f"the body is not valid JSON: {exc}", field="body") from exc
    return body


def _bind(obj: Any, names: dict[str, str], where: str) -> dict[str, Any]:
    """Rename the known fields of `obj` to their camelCase names; drop unknown ones."""
    if not isinstance(obj, dict):
        what = where or "the body"
        raise ValidationError(
            f"{what} must be a JSON object, got {_json_type(obj)}", field=where or "body"
        )
    bound: dict[str, Any] = {}
    for key, value in obj.items():
        name = names.get(key.lower()) if isinstance(key, str) else None
        if name is not None:
            bound[name] = value
    return bound


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _convert(obj: Any, shape: Any) -> Any:
    try:
        return msgspec.convert(obj, shape)
    except msgspec.ValidationError as exc:
        raise _field_error(str(exc), obj) from exc


# The value type of each mapping whose keys are data; msgspec reports a bad value in one of them
# as `numericValues[...]`, so the key is found again by checking the values one by one.
_MAPPING_VALUES: dict[str, Any] = {
    "numericValues": list[float | None],
    "stringValues": list[str | None],
    "binaryValues": list[bytes | None],
    "tagValues": list[str | None],
    "tags": str,
    "metadata": str,
}
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _resolve_path(path: str, obj: Any) -> str:
    """Turn msgspec's ``$.numericValues[...][1]`` into ``numericValues.speed[1]``."""
    out: list[str] = []
    current, last_name = obj, ""
    for match in _SEGMENT.finditer(path[1:]):
        name, index = match.groups()
        if name is not None:
            out.append(f".{name}")
            last_name = name
            current = current.get(name) if isinstance(current, dict) else None
        elif index != "...":
            out.append(f"[{index}]")
            current = current[int(index)] if isinstance(current, list) else None
        else:
            key = _bad_key(current, _MAPPING_VALUES.get(last_name))
            if key is None:
                out.append("[...]")
                current = None
            else:
                out.append(f".{key}")
                current = current[key]
    return "".join(out).lstrip(".")


def _bad_key(mapping: Any, value_type: Any) -> str | None:
    if not isinstance(mapping, dict) or value_type is None:
        return None
    for key, value in mapping.items():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError:
            return str(key)
    return None


def _field_error(text: str, obj: Any) -> ValidationError:
    # msgspec: "Expected `int`, got `float` - at `$.timestamps[1]`"
    message, _, path = text.partition(" - at `")
    field = _resolve_path(path.rstrip("`"), obj)
    missing = "Object missing required field `"
    if message.startswith(missing):
        name = message[len(missing) :].rstrip("`")
        field = f"{field}.{name}" if field else name
        message = "is required"
    field = field or "body"
    message = message[:1].lower() + message[1:]
    return ValidationError(f"{field}: {message}", field=field)


def _list_of(obj: Any, names: dict[str, str], key: str) -> list[Any]:
    """A bare array, or an object wrapping it as `key` (``{"parameters": [...]}``)."""
    if isinstance(obj, dict):
        found = [v for k, v in obj.items() if isinstance(k, str) and k.lower() == key]
        if found:
            obj = found[-1]
    if not isinstance(obj, list):
        raise ValidationError(
            f"the body must be a JSON array of definitions, got {_json_type(obj)}", field="body"
        )
    return [_bind(item, names, f"[{index}]") for index, item in enumerate(obj)]


# ---------------------------------------------------------------------------------------------
# Parsers


# Fast paths: a body in exact camelCase with nothing unknown decodes straight from its bytes into
# these (one C pass, no intermediate dicts). Anything else - PascalCase, extra fields, a type error -
# falls back to the general path, which binds names case-insensitively and names the bad field.
class _StrictParameterData(_ParameterData, forbid_unknown_fields=True):
    pass


class _StrictEvent(_Event, forbid_unknown_fields=True):
    pass


_strict_parameters = msgspec.json.Decoder(_StrictParameterData)
_strict_events = msgspec.json.Decoder(list[_StrictEvent] | _StrictEvent)


# Hub arguments arrive decoded: a dict or a list is converted to the same exact shapes (one type
# per container: converting to a union costs more than binding field by field).
_strict_shapes: dict[tuple[Any, type], Any] = {
    (_strict_parameters, dict): _StrictParameterData,
    (_strict_events, dict): _StrictEvent,
    (_strict_events, list): list[_StrictEvent],
}


def _fast(decoder: msgspec.json.Decoder[Any], body: object) -> Any:
    """`body` in its exact camelCase shape, or None to bind it field by field (and explain)."""
    try:
        if isinstance(body, bytes):
            return decoder.decode(body)
        shape = _strict_shapes.get((decoder, type(body)))
        if shape is not None:
            return msgspec.convert(body, shape)
    except msgspec.DecodeError:  # includes ValidationError
        pass
    return None


def parse_parameter_data(body: object) -> TimeseriesData:
    """ParameterData body -> :class:`TimeseriesData` with ``epoch`` folded into the timestamps."""
    raw: _ParameterData | None = _fast(_strict_parameters, body)
    if raw is None:
        raw = _convert(_bind(_load(body), _PARAMETER_DATA, ""), _ParameterData)
    epoch = raw.epoch or 0
    timestamps = raw.timestamps or []
    if epoch:
        timestamps = [t + epoch for t in timestamps]
    data = TimeseriesData(
        epoch=0,
        timestamps=timestamps,
        numeric_values=raw.numeric_values or {},
        string_values=raw.string_values or {},
        binary_values=raw.binary_values or {},
        tag_values=raw.tag_values or {},
    )
    data.validate()
    return data


def parse_event_data(body: object) -> list[EventData]:
    """An EventData array (or one EventData object) -> a list of :class:`EventData`."""
    fast: list[_Event] | _Event | None = _fast(_strict_events, body)
    if fast is not None:
        return _events(fast if isinstance(fast, list) else [fast], isinstance(fast, list))
    obj = _load(body)
    if isinstance(obj, list):
        bound: Any = [_bind(item, _EVENT, f"[{index}]") for index, item in enumerate(obj)]
        return _events(_convert(bound, list[_Event]), True)
    return _events([_convert(_bind(obj, _EVENT, ""), _Event)], False)


def _events(raws: list[_Event], array: bool) -> list[EventData]:
    events = [
        EventData(id=raw.id, timestamp=raw.timestamp, value=raw.value or "", tags=raw.tags or {})
        for raw in raws
    ]
    for index, event in enumerate(events):
        event.validate(f"[{index}]" if array else "")
    return events


def parse_stream_details(body: object) -> StreamProperties:
    """StreamDetails body (``name, location, metadata, parents, timeOfRecording``)."""
    raw: _StreamDetails = _convert(_bind(_load(body), _STREAM_DETAILS, ""), _StreamDetails)
    return StreamProperties(
        name=raw.name,
        location=raw.location,
        metadata=raw.metadata or {},
        parents=raw.parents or [],
        time_of_recording=raw.time_of_recording,
    )


def _custom_properties(items: list[dict[str, Any]]) -> None:
    # CustomProperties is JSON *text*; a client that sends the object itself gets it encoded.
    for item in items:
        value = item.get("customProperties")
        if isinstance(value, dict | list):
            item["customProperties"] = msgspec.json.encode(value).decode()


def parse_parameter_definitions(body: object) -> ParameterDefinitions:
    """A bare array of ParameterDefinition (each with ``Location``) -> the group tree.

    ``{"parameters": [...]}`` is accepted too.
    """
    items = _list_of(_load(body), _PARAMETER_DEFINITION, "parameters")
    _custom_properties(items)
    raws: list[_ParameterDefinition] = _convert(items, list[_ParameterDefinition])
    pairs: list[tuple[str | None, ParameterDefinition]] = []
    for index, raw in enumerate(raws):
        check_id(raw.id, f"[{index}].id", "parameter id")
        definition = ParameterDefinition(
            id=raw.id,
            name=raw.name,
            description=raw.description,
            minimum_value=raw.minimum_value,
            maximum_value=raw.maximum_value,
            unit=raw.unit,
            format=raw.format,
            custom_properties=raw.custom_properties,
        )
        pairs.append((raw.location, definition))
    return ParameterDefinitions.from_flat(pairs)


def parse_event_definitions(body: object) -> EventDefinitions:
    """A bare array of EventDefinition (``Level`` a name or 0-5) -> the group tree."""
    items = _list_of(_load(body), _EVENT_DEFINITION, "events")
    _custom_properties(items)
    raws: list[_EventDefinition] = _convert(items, list[_EventDefinition])
    pairs: list[tuple[str | None, EventDefinition]] = []
    for index, raw in enumerate(raws):
        check_id(raw.id, f"[{index}].id", "event id")
        level = (
            EventLevel.INFORMATION
            if raw.level is None
            else EventLevel.parse(raw.level, f"[{index}].level")
        )
        definition = EventDefinition(
            id=raw.id,
            name=raw.name,
            description=raw.description,
            custom_properties=raw.custom_properties,
            level=level,
        )
        pairs.append((raw.location, definition))
    return EventDefinitions.from_flat(pairs)


# ---------------------------------------------------------------------------------------------
# Reader API payloads (camelCase)


def format_datetime(value: datetime) -> str:
    """ISO-8601 as .NET writes it: UTC as ``Z`` (``2021-02-06T00:15:15Z``)."""
    text = value.isoformat()
    if value.utcoffset() == timedelta(0) and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _event_to_api(event: EventData) -> dict[str, Any]:
    return {"id": event.id, "timestamp": event.timestamp, "value": event.value, "tags": event.tags}


def parameter_definition_to_api(location: str, definition: ParameterDefinition) -> dict[str, Any]:
    """One parameter definition as the Reader API writes it (camelCase, with ``location``)."""
    return {
        "id": definition.id,
        "name": definition.name,
        "description": definition.description,
        "minimumValue": definition.minimum_value,
        "maximumValue": definition.maximum_value,
        "unit": definition.unit,
        "format": definition.format,
        "customProperties": definition.custom_properties,
        "location": location,
    }


def event_definition_to_api(location: str, definition: EventDefinition) -> dict[str, Any]:
    """One event definition as the Reader API writes it (``level`` by name)."""
    return {
        "id": definition.id,
        "name": definition.name,
        "description": definition.description,
        "customProperties": definition.custom_properties,
        "level": definition.level.value,
        "location": location,
    }


def _definitions(pairs: Iterable[tuple[str, Any]], convert: Any) -> list[dict[str, Any]]:
    return [convert(location, definition) for location, definition in pairs]


@overload
def to_api(obj: list[EventData]) -> list[dict[str, Any]]: ...
@overload
def to_api(
    obj: TimeseriesData
    | EventData
    | StreamProperties
    | StreamEnd
    | ParameterDefinitions
    | EventDefinitions,
) -> dict[str, Any]: ...
def to_api(obj: object) -> dict[str, Any] | list[dict[str, Any]]:
    """The camelCase JSON shape the Reader API sends for `obj` (without the topic fields).

    ``TimeseriesData`` -> the body of ``ParameterDataReceived`` (absolute timestamps, epoch 0,
    binary values in base64); ``EventData`` -> ``EventDataReceived``; definitions ->
    ``{"definitions": [...]}`` with a ``location`` each.
    """
    if isinstance(obj, TimeseriesData):
        data = obj.absolute()
        return {
            "epoch": 0,
            "timestamps": data.timestamps,
            "numericValues": data.numeric_values,
            "stringValues": data.string_values,
            "tagValues": data.tag_values,
            "binaryValues": {
                pid: [_b64(v) for v in values] for pid, values in data.binary_values.items()
            },
        }
    if isinstance(obj, EventData):
        return _event_to_api(obj)
    if isinstance(obj, list):
        return [_event_to_api(event) for event in obj]
    if isinstance(obj, StreamProperties):
        recorded = obj.time_of_recording
        return {
            "name": obj.name,
            "location": obj.location,
            "metadata": obj.metadata,
            "parents": obj.parents,
            "timeOfRecording": None if recorded is None else format_datetime(recorded),
        }
    if isinstance(obj, StreamEnd):
        return {"streamEndType": obj.stream_end_type.value}
    if isinstance(obj, ParameterDefinitions):
        return {"definitions": _definitions(obj.flatten(), parameter_definition_to_api)}
    if isinstance(obj, EventDefinitions):
        return {"definitions": _definitions(obj.flatten(), event_definition_to_api)}
    raise TypeError(f"not a Quix message model: {type(obj).__name__}")
