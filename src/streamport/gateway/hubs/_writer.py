"""The Writer hub (``/writer/hub``): the Quix Writer API over SignalR.

Every method validates with the same parsers as the HTTP API, writes through the one `Writer`,
and completes only once the broker acknowledged the write as durable. Each call needs the
``write:<topic>`` scope.

Order with parallel invocations (``ServerOptions.max_parallel_invocations`` > 1, which `Hubs`
turns on for this hub): the writes of one stream reach the log in the order the client invoked
them, on any broker. Two mechanisms, both per connection:

* the gate: a FIFO `asyncio.Lock` held from method entry (invocations start in arrival order)
  until the write is queued, so topic resolution and creation, which may suspend, cannot let a
  later invocation overtake an earlier one;
* one queue per (topic, stream): at most one produce per stream is in flight; invocations that
  arrive meanwhile are queued and written together, in order, as ONE produce (one durable
  ack for the batch). The invocation that finds the stream idle writes ("leads"); when its batch
  is durable it hands the lead to the oldest waiting invocation. If a batch fails before anything
  was written (`ValidationError`, e.g. a record too large) and holds several invocations, they are
  written one by one so each gets its own answer; any other error goes to every invocation of
  the batch (as a lone write would: the client may retry each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from streamport.errors import BrokerUnavailable, ValidationError
from streamport.gateway.hubs._common import TopicNames, hub_errors, require
from streamport.gateway.signalr import Context, hub_method
from streamport.model import (
    Message,
    StreamEnd,
    StreamEndType,
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
    accept those that are whole numbers as the integers they denote, in time fields only.
    Copies only what it changes (most payloads come back as they are)."""
    if isinstance(obj, list):
        return [_whole_times(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    fixed: dict[Any, Any] | None = None
    for key, value in obj.items():
        if not (isinstance(key, str) and key.lower() in _TIME_KEYS):
            continue
        if isinstance(value, float) and value.is_integer():
            new: Any = int(value)
        elif isinstance(value, list) and any(isinstance(v, float) for v in value):
            new = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        else:
            continue
        if fixed is None:
            fixed = dict(obj)
        fixed[key] = new
    return obj if fixed is None else fixed


def _cancelled() -> BrokerUnavailable:
    return BrokerUnavailable("the write was cancelled (the server is shutting down)")


def _abandon(queue: _StreamQueue) -> None:
    for p in queue.pending:
        if not p.future.done():
            p.future.set_exception(_cancelled())
    queue.pending = []


def _settle(entry: _Pending, error: Exception | None) -> None:
    if entry.future.done():  # its caller went away (cancelled)
        return
    if error is None:
        entry.future.set_result(None)
    else:
        entry.future.set_exception(error)


def _stream_id(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("streamId must be a string", field="streamId")
    check_stream_id(value)
    return value


class _LeadType:
    pass


_LEAD = _LeadType()  # a waiting invocation's future gets this when it is to write the next batch


class _Pending:
    """One invocation's messages waiting in its stream's queue."""

    __slots__ = ("future", "messages")

    def __init__(self, messages: tuple[Message, ...]) -> None:
        self.messages = messages
        self.future: asyncio.Future[object] = asyncio.get_running_loop().create_future()


class _StreamQueue:
    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: list[_Pending] = []  # bounded by the connection's parallel invocations


class WriterHub:
    """One per connection; see the module docstring and ``docs/hubs.md``."""

    def __init__(self, ctx: Context, writer: Writer, topics: TopicNames) -> None:
        self.ctx = ctx
        self._writer = writer
        self._topics = topics
        self._gate = asyncio.Lock()
        # streams with a write in flight; a stream is here exactly while it has a leader
        self._queues: dict[tuple[str, str], _StreamQueue] = {}

    async def _topic(self, topic: object) -> str:
        name = await self._topics.resolve(topic)
        require(self.ctx, "write", name)
        return name

    async def _write(
        self, topic: Any, stream_id: Any, build: Callable[[], tuple[Message, ...]]
    ) -> None:
        """Resolve, check, build the messages and write them in this connection's order."""
        async with self._gate:
            name = await self._topic(topic)
            sid = _stream_id(stream_id)
            messages = build()
            await self._writer.ensure_topic(name)
            key = (name, sid)
            queue = self._queues.get(key)
            entry = _Pending(messages)
            if queue is not None:
                queue.pending.append(entry)
            else:
                queue = self._queues[key] = _StreamQueue()
                queue.pending.append(entry)
                entry.future.set_result(_LEAD)
        # after the gate: only this stream's queue decides the order from here on
        try:
            outcome = await entry.future
        except asyncio.CancelledError:
            if not entry.future.cancelled() and entry.future.result() is _LEAD:
                _abandon(queue)  # made leader, then cancelled before it could write
                if self._queues.get(key) is queue:
                    del self._queues[key]
            raise
        if outcome is _LEAD:
            entry.future = asyncio.get_running_loop().create_future()
            await self._lead(key, queue, entry)
        entry.future.result()  # raises this invocation's error

    async def _lead(self, key: tuple[str, str], queue: _StreamQueue, me: _Pending) -> None:
        """Write batches of this stream until ``me`` is answered, then hand the lead over."""
        batch: list[_Pending] = []
        try:
            while queue.pending:
                batch, queue.pending = queue.pending, []
                await self._write_batch(key, batch)
                batch = []
                if me.future.done():
                    nxt = next((p for p in queue.pending if not p.future.done()), None)
                    if nxt is not None:
                        nxt.future.set_result(_LEAD)
                        return
                    # only invocations whose callers are gone remain: write them here
        except BaseException:
            # cancelled mid-write (server shutdown): nobody must wait for a leader forever
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(_cancelled())
            _abandon(queue)
            raise
        finally:
            if not queue.pending and self._queues.get(key) is queue:
                del self._queues[key]

    async def _write_batch(self, key: tuple[str, str], batch: list[_Pending]) -> None:
        name, sid = key
        messages = [m for p in batch for m in p.messages]
        try:
            await self._writer.write(name, sid, *messages)
        except ValidationError as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            for p in batch:  # rejected before anything was written: one by one, in order
                try:
                    await self._writer.write(name, sid, *p.messages)
                except Exception as one:
                    _settle(p, one)
                else:
                    _settle(p, None)
            return
        except Exception as exc:
            for p in batch:
                _settle(p, exc)
            return
        for p in batch:
            _settle(p, None)

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
                    name = await self._topic(topic)
                    properties = parse_stream_details(details)
                    return {"streamId": await self._writer.create_stream(name, properties)}
                stream_id = given
            else:
                stream_id = stream_or_details
            raw = {} if details is None else details
            await self._write(topic, stream_id, lambda: (parse_stream_details(raw),))
            return {"streamId": stream_id}

    @hub_method("SendParameterData")
    async def send_parameter_data(self, topic: Any, stream_id: Any, data: Any) -> None:
        with hub_errors("SendParameterData"):
            await self._write(topic, stream_id, lambda: (parse_parameter_data(_whole_times(data)),))

    @hub_method("SendEventData")
    async def send_event_data(self, topic: Any, stream_id: Any, events: Any) -> None:
        """Events as an array (written as one ``EventData[]`` message) or one object."""
        with hub_errors("SendEventData"):

            def build() -> tuple[Message, ...]:
                parsed = parse_event_data(_whole_times(events))
                return (parsed if isinstance(events, list) else parsed[0],)

            await self._write(topic, stream_id, build)

    @hub_method("SendParameterDefinitions")
    async def send_parameter_definitions(
        self, topic: Any, stream_id: Any, definitions: Any
    ) -> None:
        with hub_errors("SendParameterDefinitions"):
            await self._write(topic, stream_id, lambda: (parse_parameter_definitions(definitions),))

    @hub_method("SendEventDefinitions")
    async def send_event_definitions(self, topic: Any, stream_id: Any, definitions: Any) -> None:
        with hub_errors("SendEventDefinitions"):
            await self._write(topic, stream_id, lambda: (parse_event_definitions(definitions),))

    @hub_method("CloseStream")
    async def close_stream(self, topic: Any, stream_id: Any) -> None:
        with hub_errors("CloseStream"):
            await self._write(
                topic, stream_id, lambda: (StreamEnd(stream_end_type=StreamEndType.CLOSED),)
            )
