"""What one message of a Quix topic holds, and the model key that names it on the wire."""

from __future__ import annotations

from typing import TypeAlias

from streamport.model.data import EventData, StreamEnd, StreamProperties, TimeseriesData
from streamport.model.definitions import EventDefinitions, ParameterDefinitions

__all__ = ["MODEL_KEYS", "Message", "model_key"]

Message: TypeAlias = (
    TimeseriesData
    | EventData
    | list[EventData]
    | StreamProperties
    | StreamEnd
    | ParameterDefinitions
    | EventDefinitions
)

# Model keys streamport writes. ``TimeseriesData`` (quixstreams 3.x headers) is accepted on read.
MODEL_KEYS = (
    "ParameterData",
    "EventData",
    "EventData[]",
    "StreamProperties",
    "StreamEnd",
    "ParameterDefinitions",
    "EventDefinitions",
)

_KEY_BY_TYPE: dict[type, str] = {
    TimeseriesData: "ParameterData",
    EventData: "EventData",
    list: "EventData[]",
    StreamProperties: "StreamProperties",
    StreamEnd: "StreamEnd",
    ParameterDefinitions: "ParameterDefinitions",
    EventDefinitions: "EventDefinitions",
}


def model_key(message: Message) -> str:
    """The Quix model key of `message`, e.g. ``model_key(TimeseriesData()) == "ParameterData"``."""
    key = _KEY_BY_TYPE.get(type(message))
    if key is None:
        raise TypeError(f"not a Quix message model: {type(message).__name__}")
    return key
