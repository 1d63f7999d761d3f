"""The Writer hub (``/writer/hub``): the Quix Writer API over SignalR.

Every method validates with the same parsers as the HTTP API, writes through the one `Writer`,
and completes only once the broker acknowledged the write as durable. Each call needs the
``write:<topic>`` scope.
"""

from __future__ import annotations

from typing import Any

from streamport.errors import ValidationError
from streamport.gateway.hubs._common import TopicNames, hub_errors, require
from streamport.gateway.signalr import Context, hub_method
from streamport.model import (
    parse_event_data,
    parse_event_definitions,
    parse_parameter_data,
    parse_parameter_definitions,
    parse_stream_details,
)
from streamport.streams.writer import Writer, check_stream_id

_TIME_KEYS = frozenset({"timestamps", "timestamp", "epoch"})


def _whole_times(obj: Any) -> Any:
    """MessagePack clients (JavaScript numbers) send nanosecond times above 2**53 as float64:
    accept those that are whole numbers as the integers they denote, in time fields only."""
    if isinstance(obj, list):
        return [_whole_times(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    fixed: dict[Any, Any] = {}
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() in _TIME_KEYS:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            elif isinstance(value, list):
                value = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        fixed[key] = value
    return fixed


def _stream_id(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("streamId must be a string", field="streamId")
    check_stream_id(value)
    return value


class WriterHub:
    """One per connection; see the module docstring and ``docs/hubs.md``."""

    def __init__(self, ctx: Context, writer: Writer, topics: TopicNames) -> None:
        self.ctx = ctx
        self._writer = writer
        self._topics = topics

    async def _topic(self, topic: object) -> str:
        name = await self._topics.resolve(topic)
        require(self.ctx, "write", name)
        return name

    @hub_method("CreateStream")
    async def create_stream(self, topic: Any, details: Any) -> dict[str, str]:
        """``CreateStream(topic, details) -> {"streamId": ...}``; details may be ``{}``/null."""
        with hub_errors("CreateStream"):
            name = await self._topic(topic)
            properties = parse_stream_details({} if details is None else details)
            return {"streamId": await self._writer.create_stream(name, properties)}

    @hub_method("UpdateStream")
    async def update_stream(
        self, topic: Any, stream_or_details: Any, details: Any = None
    ) -> dict[str, str]:
        """``UpdateStream(topic, streamId, details)`` replaces the stream's properties (creating
        the stream with that id if new). ``UpdateStream(topic, details)``: the stream named by
        ``details.streamId``, else a new stream. Returns ``{"streamId": ...}``."""
        with hub_errors("UpdateStream"):
            name = await self._topic(topic)
            if isinstance(stream_or_details, dict) and details is None:
                details = stream_or_details
                given = next(
                    (
                        v
                        for k, v in details.items()
                        if isinstance(k, str) and k.lower() == "streamid"
                    ),
                    None,
                )
                if given is None:
                    properties = parse_stream_details(details)
                    return {"streamId": await self._writer.create_stream(name, properties)}
                stream_id = _stream_id(given)
            else:
                stream_id = _stream_id(stream_or_details)
            properties = parse_stream_details({} if details is None else details)
            await self._writer.write(name, stream_id, properties)
            return {"streamId": stream_id}

    @hub_method("SendParameterData")
    async def send_parameter_data(self, topic: Any, stream_id: Any, data: Any) -> None:
        with hub_errors("SendParameterData"):
            name = await self._topic(topic)
            sid = _stream_id(stream_id)
            await self._writer.write(name, sid, parse_parameter_data(_whole_times(data)))

    @hub_method("SendEventData")
    async def send_event_data(self, topic: Any, stream_id: Any, events: Any) -> None:
        """Events as an array (written as one ``EventData[]`` message) or one object."""
        with hub_errors("SendEventData"):
            name = await self._topic(topic)
            sid = _stream_id(stream_id)
            parsed = parse_event_data(_whole_times(events))
            message = parsed if isinstance(events, list) else parsed[0]
            await self._writer.write(name, sid, message)

    @hub_method("SendParameterDefinitions")
    async def send_parameter_definitions(
        self, topic: Any, stream_id: Any, definitions: Any
    ) -> None:
        with hub_errors("SendParameterDefinitions"):
            name = await self._topic(topic)
            sid = _stream_id(stream_id)
            await self._writer.write(name, sid, parse_parameter_definitions(definitions))

    @hub_method("SendEventDefinitions")
    async def send_event_definitions(self, topic: Any, stream_id: Any, definitions: Any) -> None:
        with hub_errors("SendEventDefinitions"):
            name = await self._topic(topic)
            sid = _stream_id(stream_id)
            await self._writer.write(name, sid, parse_event_definitions(definitions))

    @hub_method("CloseStream")
    async def close_stream(self, topic: Any, stream_id: Any) -> None:
        with hub_errors("CloseStream"):
            name = await self._topic(topic)
            await self._writer.close_stream(name, _stream_id(stream_id))
