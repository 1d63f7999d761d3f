"""Consuming streams: `TopicConsumer` -> `StreamConsumer` -> callbacks.

A subscribed consumer runs one fetch task on the client's loop. Records are decoded and handed to
the stream they belong to (the record key is the stream id); callbacks run on the loop thread, in
order. A callback that raises is reported to the client's ``on_error`` hook and the record counts
as processed: one bad callback stops nothing else. Commits cover processed records only.

Example::

    def on_stream(stream):
        stream.timeseries.on_dataframe_received = lambda s, df: print(df)

    consumer = client.get_topic_consumer("cars", "dashboard")
    consumer.on_stream_received = on_stream
    App.run()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from streamport import model
from streamport.broker import ConsumedRecord, OffsetReset
from streamport.client._core import Core
from streamport.client._data import EventData, TimeseriesData
from streamport.client._enums import AutoOffsetReset, CommitMode, CommitOptions, StreamEndType
from streamport.client._transport import SeekTarget, Subscription
from streamport.errors import CodecError

if TYPE_CHECKING:
    import pandas as pd

FETCH_RECORDS = 1000  # records asked per fetch: the bound of what waits for callbacks
FETCH_TIMEOUT = 0.5


def commit_policy(settings: CommitOptions | CommitMode | None) -> CommitOptions:
    if settings is None or settings == CommitMode.Automatic:
        return CommitOptions()
    if settings == CommitMode.Manual:
        return CommitOptions(auto_commit_enabled=False)
    assert isinstance(settings, CommitOptions)
    return settings


class _Fetcher:
    """The fetch loop of one subscription with commit bookkeeping (shared with raw consumers)."""

    def __init__(
        self,
        core: Core,
        topic: str,
        group: str | None,
        offset_reset: AutoOffsetReset | None,
        commit: CommitOptions | CommitMode | None,
    ) -> None:
        self._core = core
        self.topic = topic
        self.group = group
        self._reset: OffsetReset = (offset_reset or AutoOffsetReset.Latest).value
        self._commit = commit_policy(commit)
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._processed: dict[int, int] = {}  # partition -> next offset, not yet committed
        self._since_commit = 0
        self._last_commit = time.monotonic()
        self._commit_requested = False
        self.on_committing: Callable[[Any], None] | None = None
        self.on_committed: Callable[[Any], None] | None = None
        self.owner: Any = None

    @property
    def subscribed(self) -> bool:
        return self._task is not None

    def subscribe(self) -> None:
        if self._task is None and not self._core.disposed:
            self._core.loop.run(self._start())

    async def _start(self) -> None:
        transport = await self._core.ready()
        self._sub = await transport.subscribe(self.topic, self.group, self._reset)
        self._last_commit = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._sub is not None
        failing: str | None = None  # the failure reported last, while fetches keep failing
        while True:
            try:
                records = await self._sub.fetch(FETCH_RECORDS, FETCH_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Reported once per kind while it lasts (the gateway away for minutes is one
                # report, not one per retry); the fetch is retried, slowly.
                kind = f"{type(exc).__name__}: {exc}"
                if kind != failing:
                    failing = kind
                    self._core.report(exc)
                await asyncio.sleep(1.0)
                continue
            failing = None
            for record in records:
                self.handle(record)
                self._processed[record.partition] = record.offset + 1
                self._since_commit += 1
                if self._commit_requested:
                    await self._commit_processed()
            self.tick()
            await self._auto_commit()

    def handle(self, record: ConsumedRecord) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Called after each fetch (also an empty one): time-based releases."""

    async def _auto_commit(self) -> None:
        policy = self._commit
        if self._commit_requested:
            await self._commit_processed()
        if not policy.auto_commit_enabled or not self._processed:
            return
        due_count = policy.commit_every is not None and self._since_commit >= policy.commit_every
        due_time = (
            policy.commit_interval is not None
            and (time.monotonic() - self._last_commit) * 1000 >= policy.commit_interval
        )
        if due_count or due_time:
            await self._commit_processed()

    async def _commit_processed(self) -> None:
        self._commit_requested = False
        if self.group is None or not self._processed or self._sub is None:
            return  # without a consumer group there is nothing to commit
        offsets, self._processed = self._processed, {}
        self._call(self.on_committing)
        try:
            await self._sub.commit(offsets)
        except Exception as exc:
            self._core.report(exc)
            for p, o in offsets.items():  # keep them for the next attempt
                self._processed.setdefault(p, o)
            return
        self._since_commit = 0
        self._last_commit = time.monotonic()
        self._call(self.on_committed)

    def _call(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(self.owner, *args)
        except Exception as exc:
            self._core.report(exc)

    def commit(self) -> None:
        """Commit what was processed (from a callback: right after the callback returns)."""
        if self._core.loop.in_loop():
            self._commit_requested = True
        elif self._task is not None:
            self._core.loop.run(self._commit_processed())

    def seek(self, offset: SeekTarget, partition: int | None = None) -> None:
        if self._sub is None:
            raise RuntimeError("subscribe() first")
        self._core.loop.run(self._sub.seek(offset, partition))

    def unsubscribe(self, *, commit: bool = True) -> None:
        if self._task is None:
            return
        self._core.loop.run(self._stop(commit))

    async def _stop(self, commit: bool) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if commit and self._commit.auto_commit_enabled:
            await self._commit_processed()
        if self._sub is not None:
            await self._sub.aclose()
            self._sub = None


class TopicConsumer:
    """The streams of one topic; set ``on_stream_received`` before subscribing."""

    def __init__(
        self,
        core: Core,
        topic: str,
        consumer_group: str | None,
        auto_offset_reset: AutoOffsetReset | None,
        commit_settings: CommitOptions | CommitMode | None,
    ) -> None:
        self._core = core
        self.topic = topic
        self._fetcher = _StreamFetcher(
            self, core, topic, consumer_group, auto_offset_reset, commit_settings
        )
        self._fetcher.owner = self
        self.on_stream_received: Callable[[StreamConsumer], None] | None = None
        self.on_streams_revoked: Callable[[TopicConsumer, list[StreamConsumer]], None] | None = None
        self.on_revoking: Callable[[TopicConsumer], None] | None = None
        self._streams: dict[str, StreamConsumer] = {}
        core.consumers.append(self)

    @property
    def on_committed(self) -> Callable[[Any], None] | None:
        return self._fetcher.on_committed

    @on_committed.setter
    def on_committed(self, callback: Callable[[Any], None] | None) -> None:
        self._fetcher.on_committed = callback

    @property
    def on_committing(self) -> Callable[[Any], None] | None:
        return self._fetcher.on_committing

    @on_committing.setter
    def on_committing(self, callback: Callable[[Any], None] | None) -> None:
        self._fetcher.on_committing = callback

    def subscribe(self) -> None:
        self._fetcher.subscribe()

    def unsubscribe(self) -> None:
        self._fetcher.unsubscribe()

    def commit(self) -> None:
        self._fetcher.commit()

    def seek(self, offset: SeekTarget, partition: int | None = None) -> None:
        """Move to ``"beginning"``, ``"end"`` or an offset (of `partition`, else all)."""
        self._fetcher.seek(offset, partition)

    def dispose(self) -> None:
        try:
            self._fetcher.unsubscribe()
        finally:
            if self in self._core.consumers:
                self._core.consumers.remove(self)

    def __enter__(self) -> TopicConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    def _stream(self, stream_id: str) -> StreamConsumer:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = StreamConsumer(self, stream_id)
            self._streams[stream_id] = stream
            self._fetcher._call_user(self.on_stream_received, stream)
        return stream


class _StreamFetcher(_Fetcher):
    def __init__(self, consumer: TopicConsumer, *args: Any) -> None:
        super().__init__(*args)
        self._consumer = consumer

    def _call_user(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as exc:
            self._core.report(exc)

    def handle(self, record: ConsumedRecord) -> None:
        stream_id = (record.key or b"").decode("utf-8", "replace")
        try:
            message = model.decode(record.value, record.headers)
        except CodecError as exc:
            self._core.report(
                CodecError(f"{self.topic}[{record.partition}]@{record.offset}: {exc}")
            )
            return
        stream = self._consumer._stream(stream_id)
        stream._receive(message, self._call_user)
        if isinstance(message, model.StreamEnd):
            self._consumer._streams.pop(stream_id, None)

    def tick(self) -> None:
        for stream in list(self._consumer._streams.values()):
            for buffer in stream.timeseries._buffers:
                buffer._tick(self._call_user)


Call = Callable[..., None]


class StreamConsumer:
    def __init__(self, topic: TopicConsumer, stream_id: str) -> None:
        self.topic = topic
        self.stream_id = stream_id
        self.properties = StreamPropertiesConsumer(self)
        self.timeseries = StreamTimeseriesConsumer(self)
        self.events = StreamEventsConsumer(self)
        self.on_stream_closed: Callable[[StreamConsumer, StreamEndType], None] | None = None
        self.on_package_received: Callable[[StreamConsumer, Any], None] | None = None

    def _receive(self, message: model.Message, call: Callable[..., None]) -> None:
        call(self.on_package_received, self, message)
        if isinstance(message, model.TimeseriesData):
            self.timeseries._receive(message, call)
        elif isinstance(message, model.EventData | list):
            for event in message if isinstance(message, list) else [message]:
                call(self.events.on_data_received, self, EventData.from_raw(event))
        elif isinstance(message, model.StreamProperties):
            self.properties._raw = message
            call(self.properties.on_changed, self)
        elif isinstance(message, model.ParameterDefinitions):
            self.timeseries._definitions = message
            call(self.timeseries.on_definitions_changed, self)
        elif isinstance(message, model.EventDefinitions):
            self.events._definitions = message
            call(self.events.on_definitions_changed, self)
        elif isinstance(message, model.StreamEnd):
            for buffer in self.timeseries._buffers:
                buffer._release(call)
            end = StreamEndType.from_model(message.stream_end_type)
            call(self.on_stream_closed, self, end)


class StreamPropertiesConsumer:
    def __init__(self, stream: StreamConsumer) -> None:
        self._raw = model.StreamProperties()
        self.on_changed: Callable[[StreamConsumer], None] | None = None

    @property
    def name(self) -> str | None:
        return self._raw.name

    @property
    def location(self) -> str | None:
        return self._raw.location

    @property
    def metadata(self) -> dict[str, str]:
        return self._raw.metadata

    @property
    def parents(self) -> list[str]:
        return self._raw.parents

    @property
    def time_of_recording(self) -> datetime | None:
        return self._raw.time_of_recording


class StreamTimeseriesConsumer:
    def __init__(self, stream: StreamConsumer) -> None:
        self._stream = stream
        self.on_data_received: Callable[[StreamConsumer, TimeseriesData], None] | None = None
        self.on_raw_received: Callable[[StreamConsumer, model.TimeseriesData], None] | None = None
        self.on_dataframe_received: Callable[[StreamConsumer, pd.DataFrame], None] | None = None
        self.on_definitions_changed: Callable[[StreamConsumer], None] | None = None
        self._definitions = model.ParameterDefinitions()
        self._buffers: list[TimeseriesBufferConsumer] = []

    @property
    def definitions(self) -> list[model.ParameterDefinition]:
        return [d for _, d in self._definitions.flatten()]

    def create_buffer(
        self, *parameter_filter: str, buffer_configuration: Any = None
    ) -> TimeseriesBufferConsumer:
        buffer = TimeseriesBufferConsumer(self._stream, list(parameter_filter))
        if buffer_configuration is not None:
            for name in ("packet_size", "time_span_in_nanoseconds", "buffer_timeout"):
                if hasattr(buffer_configuration, name):
                    setattr(buffer, name, getattr(buffer_configuration, name))
        self._buffers.append(buffer)
        return buffer

    def _receive(self, raw: model.TimeseriesData, call: Callable[..., None]) -> None:
        stream = self._stream
        call(self.on_raw_received, stream, raw)
        if self.on_data_received is not None:
            call(self.on_data_received, stream, TimeseriesData.from_raw(raw))
        if self.on_dataframe_received is not None:
            from streamport.client._pandas import timeseries_to_dataframe

            call(self.on_dataframe_received, stream, timeseries_to_dataframe(raw))
        for buffer in self._buffers:
            buffer._add(raw, call)


class TimeseriesBufferConsumer:
    """Collects received timeseries data and releases it in packets (see the producer buffer)."""

    def __init__(self, stream: StreamConsumer, parameter_filter: list[str]) -> None:
        self._stream = stream
        self._filter = parameter_filter
        self._data = TimeseriesData()
        self._since = 0.0
        self.packet_size: int | None = None
        self.time_span_in_nanoseconds: int | None = None
        self.buffer_timeout: int | None = None  # ms
        self.on_data_released: Callable[[StreamConsumer, TimeseriesData], None] | None = None
        self.on_dataframe_released: Callable[[StreamConsumer, pd.DataFrame], None] | None = None

    @property
    def time_span_in_milliseconds(self) -> int | None:
        span = self.time_span_in_nanoseconds
        return None if span is None else span // 1_000_000

    @time_span_in_milliseconds.setter
    def time_span_in_milliseconds(self, value: int | None) -> None:
        self.time_span_in_nanoseconds = None if value is None else value * 1_000_000

    def _add(self, raw: model.TimeseriesData, call: Callable[..., None]) -> None:
        data = TimeseriesData.from_raw(raw)
        if self._filter:
            data = data.clone(self._filter)
        for row in data.timestamps:
            if not self._data.timestamps:
                self._since = time.monotonic()
            self._data.timestamps.append(row)
            rows = self._data.timestamps
            size, span = self.packet_size, self.time_span_in_nanoseconds
            if (
                (size is None and span is None and not self.buffer_timeout)
                or (size is not None and len(rows) >= size)
                or (
                    span is not None
                    and rows[-1].timestamp_nanoseconds - rows[0].timestamp_nanoseconds >= span
                )
            ):
                self._release(call)

    def _tick(self, call: Callable[..., None]) -> None:
        timeout = self.buffer_timeout
        if timeout and self._data.timestamps and (time.monotonic() - self._since) * 1000 >= timeout:
            self._release(call)

    def _release(self, call: Callable[..., None]) -> None:
        if not self._data.timestamps:
            return
        data, self._data = self._data, TimeseriesData()
        call(self.on_data_released, self._stream, data)
        if self.on_dataframe_released is not None:
            call(self.on_dataframe_released, self._stream, data.to_dataframe())


class StreamEventsConsumer:
    def __init__(self, stream: StreamConsumer) -> None:
        self.on_data_received: Callable[[StreamConsumer, EventData], None] | None = None
        self.on_definitions_changed: Callable[[StreamConsumer], None] | None = None
        self._definitions = model.EventDefinitions()

    @property
    def definitions(self) -> list[model.EventDefinition]:
        return [d for _, d in self._definitions.flatten()]
