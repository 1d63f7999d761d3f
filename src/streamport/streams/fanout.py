"""The read path: one broker reader per subscribed topic, fanned out to many subscribers.

Per topic with at least one subscriber, one `TopicReader` task reads the topic (no consumer
group), decodes each record once, updates the topic's active streams and metrics and matches the
subscriptions (stream, parameter or event id; ``*`` wildcards). The unit of delivery is one broker
fetch (everything available, up to ``fetch_records``, plus what lands in the loop turns right after
it: see `TopicReader._take`): each `Push` is built once, and at the end of
the fetch the subscribers that get exactly the same pushes form a group whose pushes, in order, go
to each member in one non-blocking ``send_many(Pushes)`` call (or one ``send(push)`` per push for
subscribers without ``send_many``), ``flush_chunk`` subscribers per event-loop turn. So the cost
per subscriber is per fetch, not per message, and batches grow by themselves under load. The
subscriber's own bounded queue (the SignalR connection's outgoing queue) decides what happens when
it is full: it closes that connection; the reader never waits for a subscriber.

Starting point of a reader (a documented choice): it remembers the partitions' high watermarks (the
*live point*), then seeks to ``now - replay_seconds`` and reads from there. Records before the live
point only rebuild the active streams and metrics; records at or after it are delivered. So
``SubscribeToActiveStreams`` on a fresh reader returns the streams seen in the last few minutes,
and subscribers get only what is written after they subscribed. A topic that does not exist yet has
live point 0 everywhere: once it is created, everything in it is new.

Failures: a reader that raises (broker outage, deleted topic, a bug) is logged, counted in
``TopicReader.failures`` and restarted with exponential backoff, resuming from the offset after the
last record it handled, so nothing is lost or delivered twice across a restart. When the last
subscriber of a topic leaves, its reader task is cancelled and the consumer closed.

Example::

    fanout = FanOut(broker)
    await fanout.start()
    sub = Subscriber(lambda push: print(push.target, push.args) or True)
    await fanout.subscribe(sub, Kind.EVENT, "cars", "*", "Alert")
    ...
    fanout.unsubscribe_all(sub)
    await fanout.aclose()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import logging
import re
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from streamport.broker import Broker, ConsumedRecord, Consumer
from streamport.errors import CodecError, UnknownTopic
from streamport.model import (
    EventData,
    EventDefinitions,
    Message,
    ParameterDefinitions,
    StreamEnd,
    StreamProperties,
    TimeseriesData,
    decode,
    encode_value,
    format_datetime,
    to_api,
)
from streamport.streams.topic_metrics import TopicMetrics
from streamport.streams.tracker import ActiveStreams, StreamChange

__all__ = [
    "FanOut",
    "FanOutOptions",
    "Kind",
    "Push",
    "Pushes",
    "Subscriber",
    "TopicReader",
    "package_type",
]

log = logging.getLogger("streamport.streams.fanout")


class Kind(enum.Enum):
    """What a subscription asks for. Item patterns apply to PARAMETER and EVENT only."""

    PARAMETER = "parameter"
    EVENT = "event"
    PACKAGES = "packages"
    ACTIVE_STREAMS = "active_streams"
    METRICS = "metrics"
    PARAMETER_DEFINITIONS = "parameter_definitions"
    EVENT_DEFINITIONS = "event_definitions"


class Push:
    """One server-to-client call, ``target(*args)``, shared by every subscriber it goes to.

    ``prepared`` is free for the transport to cache its serialised form (serialise once per
    broadcast, not once per subscriber)."""

    __slots__ = ("args", "prepared", "target")

    def __init__(self, target: str, *args: Any) -> None:
        self.target = target
        self.args = args
        self.prepared: Any = None

    def __repr__(self) -> str:
        return f"Push({self.target!r}, {self.args!r})"


class Pushes:
    """The pushes of one dispatcher batch for one group of subscribers (those that get exactly
    the same pushes), in order. Shared by the whole group: ``prepared`` is free for the transport
    to cache the joined serialised form (once per group and protocol, not once per subscriber)."""

    __slots__ = ("items", "prepared")

    def __init__(self, items: list[Push]) -> None:
        self.items = items
        self.prepared: Any = None

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Pushes({self.items!r})"


class Subscriber:
    """One client of the fan-out. ``send`` must not block; it returns False when the client is
    gone (or was just closed because its queue overflowed) - the fan-out then stops feeding it.

    ``send_many``, when given, takes all the pushes of one dispatcher batch at once (same
    contract); without it the fan-out calls ``send`` once per push."""

    __slots__ = ("closed", "name", "send", "send_many")

    def __init__(
        self,
        send: Callable[[Push], bool],
        name: str = "",
        send_many: Callable[[Pushes], bool] | None = None,
    ) -> None:
        self.send = send
        self.send_many = send_many
        self.name = name
        self.closed = False


# how long `TopicReader._take` waits for a record before asking busy(topic) again
_BUSY_SLICE = 0.001


@dataclass(frozen=True)
class FanOutOptions:
    replay_seconds: float = 300.0  # how far back a new reader rebuilds active streams and metrics
    metrics_interval: float = 1.0  # TopicMetricsUpdated period
    fetch_records: int = 500  # the most records one dispatcher batch takes from the broker
    flush_chunk: int = 64  # subscribers handed a batch per event-loop turn (then it yields)
    # after a fetch, keep taking what each following loop turn brings, for at most this long
    gather_seconds: float = 0.02
    # busy(topic): True while writes to the topic are being taken in and will land soon (the
    # gateway: `Hubs`); gathering then also waits through turns that bring nothing
    busy: Callable[[str], bool] | None = None
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    unknown_topic_poll: float = 0.5  # how often a reader of a missing topic looks for it
    ready_timeout: float = 5.0  # how long a subscribe waits for the replay to finish
    max_streams: int = 10_000  # active streams kept per topic (least recently seen evicted)
    workspace_id: str = ""  # topicId = "{workspace_id}-{topic}" when set, else the topic name
    on_read: Callable[[str, int], None] | None = None  # (topic, records) after each broker fetch


# ---------------------------------------------------------------------------------------------
# Matching


_Pattern = Callable[[str], bool]


def _any(_: str) -> bool:
    return True


def compile_pattern(pattern: str) -> _Pattern:
    """``*`` matches anything (also inside a pattern: ``Engine*``); everything else is literal."""
    if pattern == "*":
        return _any
    if "*" not in pattern:
        return pattern.__eq__
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


class _Key(NamedTuple):
    kind: Kind
    stream: str
    item: str


class _Entry:
    """Subscribers sharing one (kind, stream pattern, item pattern) on a topic."""

    __slots__ = ("item", "stream", "subscribers")

    def __init__(self, key: _Key) -> None:
        self.stream = compile_pattern(key.stream)
        self.item = compile_pattern(key.item)
        self.subscribers: set[Subscriber] = set()


# ---------------------------------------------------------------------------------------------
# Payloads

_TYPE_PREFIX = "QuixStreams.Telemetry.Models."
_PACKAGE_TYPES: dict[type, str] = {
    TimeseriesData: _TYPE_PREFIX + "TimeseriesDataRaw",
    EventData: _TYPE_PREFIX + "EventDataRaw",
    list: _TYPE_PREFIX + "EventDataRaw[]",
    StreamProperties: _TYPE_PREFIX + "StreamProperties",
    StreamEnd: _TYPE_PREFIX + "StreamEnd",
    ParameterDefinitions: _TYPE_PREFIX + "ParameterDefinitions",
    EventDefinitions: _TYPE_PREFIX + "EventDefinitions",
}
RAW_PACKAGE_TYPE = "System.Byte[]"


def package_type(message: Message | None) -> str:
    """The ``type`` of a ``PackageReceived`` for `message` (None = undecodable raw bytes)."""
    if message is None:
        return RAW_PACKAGE_TYPE
    return _PACKAGE_TYPES[type(message)]


def _raw_text(value: bytes) -> str:
    """Undecodable bytes as text: the UTF-8 text when it is text, else base64."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


def _date_time(timestamp_ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp_ms / 1000, UTC))


# ---------------------------------------------------------------------------------------------
# The reader of one topic


class TopicReader:
    """Reads one topic for the fan-out; see the module docstring. Owned by `FanOut`."""

    def __init__(
        self,
        broker: Broker,
        topic: str,
        options: FanOutOptions,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.topic_id = f"{options.workspace_id}-{topic}" if options.workspace_id else topic
        self.options = options
        self.tracker = ActiveStreams(options.max_streams)
        self.metrics = TopicMetrics(topic, interval=options.metrics_interval)
        self.ready = asyncio.Event()  # set once the replay has caught up to the live point
        self.entries: dict[_Key, _Entry] = {}
        self.records = 0  # records handled
        self.undecodable = 0  # records that are not a Quix message (still delivered as packages)
        self.delivered = 0  # pushes handed to subscribers
        self.batches = 0  # dispatcher batches (one per broker fetch that produced pushes)
        self.groups = 0  # (batch, group of subscribers getting the same pushes) pairs
        self.failures = 0  # reader failures (each one also logged)
        self.last_error: BaseException | None = None
        self.send_errors = 0  # subscriber sends that raised (a bug in the subscriber; logged)
        self._live: dict[int, int] | None = None  # partition -> first offset to deliver
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        self._next_tick = 0.0
        # the pushes of the current dispatcher batch, each with the index of its receiver set
        self._batch: list[tuple[Push, int]] = []
        self._sets: list[list[Subscriber]] = []
        self._set_index: dict[Hashable, int] = {}

    # -- subscriptions ------------------------------------------------------------------------

    def add(self, key: _Key, subscriber: Subscriber) -> None:
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry(key)
        entry.subscribers.add(subscriber)

    def remove(self, key: _Key, subscriber: Subscriber) -> bool:
        entry = self.entries.get(key)
        if entry is None or subscriber not in entry.subscribers:
            return False
        entry.subscribers.discard(subscriber)
        if not entry.subscribers:
            del self.entries[key]
        return True

    def subscribers(self) -> set[Subscriber]:
        found: set[Subscriber] = set()
        for entry in self.entries.values():
            found |= entry.subscribers
        return found

    # -- the task -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Read until cancelled; failures are logged, counted and retried with backoff."""
        backoff = self.options.backoff_initial
        while True:
            try:
                await self._read()
                backoff = self.options.backoff_initial
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.last_error = exc
                log.warning(
                    "fan-out reader of %r failed (%s: %s); retrying in %.1fs",
                    self.topic,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                # never keep a subscriber waiting for a replay that cannot happen now
                self.ready.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.options.backoff_max)

    async def _read(self) -> None:
        consumer = self.broker.consumer([self.topic])
        try:
            await consumer.start()
        except UnknownTopic:
            if self._live is None:
                self._live = {}  # created later: everything in it will be new
            self.ready.set()
            await consumer.aclose()
            await asyncio.sleep(self.options.unknown_topic_poll)
            return
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(consumer.aclose)
            tps = sorted(consumer.assignment())
            if self._live is None:
                marks = await self.broker.watermarks(self.topic)
                self._live = {p: m.high for p, m in enumerate(marks)}
                since_ms = int((time.time() - self.options.replay_seconds) * 1000)
                await consumer.seek_to_timestamp(since_ms, tps)
            else:
                # a restart, or a topic that did not exist when the reader started
                for tp in tps:
                    if tp.partition in self._positions:
                        await consumer.seek(tp, self._positions[tp.partition])
                    elif self._live.get(tp.partition, 0) == 0:
                        await consumer.seek_to_beginning([tp])
            for tp in tps:
                self._positions[tp.partition] = await consumer.position(tp)
            self._check_ready()
            while True:
                if not consumer.assignment():
                    # the topic was deleted under us: if it comes back, all of it is new
                    self._live, self._positions = {}, {}
                    for change in self.tracker.forget_topic(self.topic):
                        self._active_stream_changed(change)
                    await self._flush()
                    raise UnknownTopic(self.topic)
                timeout = max(0.0, self._next_tick - time.monotonic())
                # everything available (up to the cap): batches grow by themselves under load
                records = await consumer.fetch(self.options.fetch_records, timeout)
                try:
                    await self._take(consumer, records)
                    self._check_ready()
                    if time.monotonic() >= self._next_tick:
                        self._tick()
                finally:
                    await self._flush()

    async def _take(self, consumer: Consumer, records: list[ConsumedRecord]) -> None:
        """Handle `records` and then what lands in the following loop turns, as long as each
        turn brings some (up to ``fetch_records`` and ``gather_seconds``): one batch to flush.

        A burst of writes reaches the log over several turns (the gateway takes one request after
        another); the first of them wakes the reader. Flushing at once would send every
        subscriber one frame for the first record and another for the rest, and a flush to
        hundreds of subscribers holds the loop for milliseconds, so the rest also waits for it.
        Gathering first sends the burst as one frame per subscriber (fan-out benchmark: gateway
        CPU 45 % -> 33 %, p50 latency 39 -> 28 ms). A lone record costs one loop turn. Each
        piece is handled (decoded, matched) as it lands, in the gaps between the writes, not
        all at the end.

        A write takes several turns from the socket to the log, and a burst's writes arrive over
        milliseconds, so a turn that brings nothing does not mean the burst is over. While
        ``busy(topic)`` says writes to it are still being taken in, the reader waits for the next
        record (in slices of 1 ms, without spinning) instead of flushing part of the burst: a
        flush to hundreds of subscribers started early holds the rest of the burst back for its
        whole length (the timeline of the fan-out benchmark showed bursts cut in two: their
        second part went out 20-30 ms late). ``gather_seconds`` bounds the wait either way.
        """
        cap, busy = self.options.fetch_records, self.options.busy
        deadline = time.monotonic() + self.options.gather_seconds
        taken = 0
        try:
            while records:
                for record in records:
                    self._handle(record)
                taken += len(records)
                records = []
                while not records and taken < cap:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    await asyncio.sleep(0)
                    records = await consumer.fetch(cap - taken, 0)
                    if not records:
                        if busy is None or not busy(self.topic):
                            break
                        # wait for the next record, a slice at a time (busy may turn False)
                        records = await consumer.fetch(cap - taken, min(left, _BUSY_SLICE))
        finally:
            if taken and self.options.on_read is not None:
                self.options.on_read(self.topic, taken)

    def _check_ready(self) -> None:
        if self.ready.is_set() or self._live is None:
            return
        if all(self._positions.get(p, 0) >= high for p, high in self._live.items()):
            self.ready.set()

    # -- one record ---------------------------------------------------------------------------

    def _handle(self, record: ConsumedRecord) -> None:
        self.records += 1
        self._positions[record.partition] = record.offset + 1
        live = record.offset >= (self._live or {}).get(record.partition, 0)
        self.metrics.add(len(record.value), time.time() if live else record.timestamp_ms / 1000)
        stream_id = record.key.decode("utf-8", "replace") if record.key is not None else ""
        message: Message | None
        try:
            message = decode(record.value, record.headers)
        except CodecError:
            self.undecodable += 1
            message = None
        changes = (
            []
            if message is None
            else self.tracker.observe(self.topic, stream_id, message, record.timestamp_ms)
        )
        if not live:
            return
        for change in changes:
            self._active_stream_changed(change)
        self._dispatch(stream_id, message, record)

    def _push(self, key: Hashable, receivers: Iterable[Subscriber], push: Push) -> None:
        """Add `push` to the batch. `key` names the receiver set within this batch (the same
        key must mean the same subscribers); `receivers` is only read the first time."""
        index = self._set_index.get(key)
        if index is None:
            index = self._set_index[key] = len(self._sets)
            self._sets.append([s for s in dict.fromkeys(receivers) if not s.closed])
        self._batch.append((push, index))

    async def _flush(self) -> None:
        """Hand the batch over: subscribers that get exactly the same pushes form one group, and
        each group's pushes (in order) go to each of its subscribers in one call.

        Every ``flush_chunk`` subscribers the reader yields to the event loop, so the writers
        woken so far send while the rest is handed over, and one big fan-out never holds the
        loop (the write path, other topics) for long."""
        batch, sets = self._batch, self._sets
        self._batch, self._sets, self._set_index = [], [], {}
        if not batch:
            return
        self.batches += 1
        if len(sets) == 1:
            self.groups += 1
            await self._deliver(sets[0], Pushes([push for push, _ in batch]))
            return
        where: dict[Subscriber, list[int]] = {}
        for index, members in enumerate(sets):
            for subscriber in members:
                found = where.get(subscriber)
                if found is None:
                    where[subscriber] = [index]
                else:
                    found.append(index)
        groups: dict[tuple[int, ...], list[Subscriber]] = {}
        for subscriber, indexes in where.items():
            groups.setdefault(tuple(indexes), []).append(subscriber)
        for signature, subscribers in groups.items():
            if len(signature) == 1:
                only = signature[0]
                items = [push for push, index in batch if index == only]
            else:
                wanted = set(signature)
                items = [push for push, index in batch if index in wanted]
            self.groups += 1
            await self._deliver(subscribers, Pushes(items))

    async def _deliver(self, subscribers: list[Subscriber], pushes: Pushes) -> None:
        chunk = self.options.flush_chunk
        for n, subscriber in enumerate(subscribers, 1):
            if n % chunk == 0:
                await asyncio.sleep(0)
            if subscriber.closed:
                continue
            sent = 0
            try:
                if subscriber.send_many is not None:
                    ok = subscriber.send_many(pushes)
                    sent = len(pushes) if ok else 0
                else:
                    ok = True
                    for push in pushes.items:
                        if not subscriber.send(push):
                            ok = False
                            break
                        sent += 1
            except Exception:
                self.send_errors += 1
                log.exception("fan-out: sending %r to %s failed", pushes, subscriber.name)
                ok = False
            self.delivered += sent
            if not ok:
                subscriber.closed = True  # gone; its owner removes its subscriptions

    def _matching(self, kind: Kind, stream_id: str) -> list[_Entry]:
        return [
            entry
            for key, entry in self.entries.items()
            if key.kind is kind and entry.stream(stream_id)
        ]

    def _base(self, stream_id: str) -> dict[str, Any]:
        return {"topicId": self.topic_id, "topicName": self.topic, "streamId": stream_id}

    def _dispatch(self, stream_id: str, message: Message | None, record: ConsumedRecord) -> None:
        if not self.entries:
            return
        packages = self._matching(Kind.PACKAGES, stream_id)
        if packages:
            value = _raw_text(record.value) if message is None else encode_value(message).decode()
            payload = self._base(stream_id) | {
                "type": package_type(message),
                "value": value,
                "dateTime": _date_time(record.timestamp_ms),
            }
            receivers = (s for e in packages for s in e.subscribers)
            self._push((Kind.PACKAGES, *packages), receivers, Push("PackageReceived", payload))
        if isinstance(message, TimeseriesData):
            self._parameter_data(stream_id, message)
        elif isinstance(message, EventData):
            self._events(stream_id, [message])
        elif isinstance(message, list):
            self._events(stream_id, message)
        elif isinstance(message, ParameterDefinitions):
            self._definitions(
                Kind.PARAMETER_DEFINITIONS, "ParameterDefinitionsUpdated", stream_id, message
            )
        elif isinstance(message, EventDefinitions):
            self._definitions(Kind.EVENT_DEFINITIONS, "EventDefinitionsUpdated", stream_id, message)

    def _parameter_data(self, stream_id: str, data: TimeseriesData) -> None:
        entries = self._matching(Kind.PARAMETER, stream_id)
        if not entries:
            return
        kinds = data.parameter_ids()
        matched: list[tuple[_Entry, frozenset[str]]] = []
        for entry in entries:
            ids = frozenset(pid for pid in kinds if entry.item(pid))
            if ids:
                matched.append((entry, ids))
        if not matched:
            return
        full = to_api(data)
        if len(matched) == 1:  # the usual case: no per-subscriber work at all
            entry, ids = matched[0]
            push = Push("ParameterDataReceived", self._parameters(stream_id, full, ids, kinds))
            self._push((Kind.PARAMETER, entry), entry.subscribers, push)
            return
        wanted: dict[Subscriber, set[str]] = {}
        for entry, ids in matched:
            for subscriber in entry.subscribers:
                wanted.setdefault(subscriber, set()).update(ids)
        # one payload per distinct set of parameters, shared by the subscribers that want it
        groups: dict[frozenset[str], list[Subscriber]] = {}
        for subscriber, wanted_ids in wanted.items():
            groups.setdefault(frozenset(wanted_ids), []).append(subscriber)
        key = (Kind.PARAMETER, frozenset(kinds), *(entry for entry, _ in matched))
        for selected, subscribers in groups.items():
            push = Push("ParameterDataReceived", self._parameters(stream_id, full, selected, kinds))
            self._push((*key, selected), subscribers, push)

    def _parameters(
        self, stream_id: str, full: dict[str, Any], selected: frozenset[str], kinds: Any
    ) -> dict[str, Any]:
        payload = self._base(stream_id) | full
        if len(selected) != len(kinds):
            for group in ("numericValues", "stringValues", "binaryValues"):
                payload[group] = {k: v for k, v in full[group].items() if k in selected}
        return payload

    def _events(self, stream_id: str, events: list[EventData]) -> None:
        entries = self._matching(Kind.EVENT, stream_id)
        if not entries:
            return
        for event in events:
            matched = [e for e in entries if e.item(event.id)]
            if matched:
                payload = self._base(stream_id) | to_api(event)
                receivers = (s for e in matched for s in e.subscribers)
                self._push((Kind.EVENT, *matched), receivers, Push("EventDataReceived", payload))

    def _definitions(
        self,
        kind: Kind,
        target: str,
        stream_id: str,
        message: ParameterDefinitions | EventDefinitions,
    ) -> None:
        entries = self._matching(kind, stream_id)
        if entries:
            payload = self._base(stream_id) | to_api(message)
            receivers = (s for e in entries for s in e.subscribers)
            self._push((kind, *entries), receivers, Push(target, payload))

    def _active_stream_changed(self, change: StreamChange) -> None:
        entries = [e for k, e in self.entries.items() if k.kind is Kind.ACTIVE_STREAMS]
        if entries:
            stream = change.stream.to_api(self.topic_id)
            push = Push("ActiveStreamsChanged", stream, change.action.value)
            receivers = (s for e in entries for s in e.subscribers)
            self._push((Kind.ACTIVE_STREAMS, *entries), receivers, push)

    def active_streams(self) -> list[dict[str, Any]]:
        """The topic's current active streams as Reader API ``ActiveStream`` payloads."""
        return [s.to_api(self.topic_id) for s in self.tracker.streams(self.topic)]

    def _tick(self) -> None:
        self._next_tick = time.monotonic() + self.options.metrics_interval
        sample = self.metrics.tick(len(self.tracker.streams(self.topic)), time.time())
        if sample is None:
            return
        entries = [e for k, e in self.entries.items() if k.kind is Kind.METRICS]
        if entries:
            push = Push("TopicMetricsUpdated", sample.to_api(self.topic_id, self.topic))
            receivers = (s for e in entries for s in e.subscribers)
            self._push((Kind.METRICS, *entries), receivers, push)


# ---------------------------------------------------------------------------------------------
# The dispatcher of one gateway process


class FanOut:
    """All topic readers of one gateway process. ``start()`` / ``aclose()`` own their tasks."""

    def __init__(
        self,
        broker: Broker,
        options: FanOutOptions | None = None,
    ) -> None:
        self.broker = broker
        self.options = options or FanOutOptions()
        self.readers: dict[str, TopicReader] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def aclose(self) -> None:
        self._running = False
        tasks = [*self._tasks.values(), *self._stopping]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._stopping.clear()
        self.readers.clear()

    async def __aenter__(self) -> FanOut:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _reader(self, topic: str) -> TopicReader:
        reader = self.readers.get(topic)
        if reader is None:
            if not self._running:
                raise RuntimeError("the fan-out is not running: call start() first")
            reader = TopicReader(self.broker, topic, self.options)
            self.readers[topic] = reader
            self._tasks[topic] = asyncio.create_task(reader.run(), name=f"fanout:{topic}")
        return reader

    async def subscribe(
        self, subscriber: Subscriber, kind: Kind, topic: str, stream: str = "*", item: str = "*"
    ) -> TopicReader:
        """Add a subscription; returns the topic's reader once its replay caught up (or after
        ``ready_timeout``: a broker outage does not block a subscribe for long)."""
        reader = self._reader(topic)
        reader.add(_Key(kind, stream, item), subscriber)
        if not reader.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.ready.wait(), self.options.ready_timeout)
        return reader

    def unsubscribe(
        self, subscriber: Subscriber, kind: Kind, topic: str, stream: str = "*", item: str = "*"
    ) -> bool:
        """Remove one subscription; False if there was no such subscription."""
        reader = self.readers.get(topic)
        if reader is None:
            return False
        removed = reader.remove(_Key(kind, stream, item), subscriber)
        self._stop_if_idle(topic)
        return removed

    def unsubscribe_stream(self, subscriber: Subscriber, topic: str, stream: str) -> int:
        """Remove every subscription of `subscriber` to `stream` (the pattern as given)."""
        reader = self.readers.get(topic)
        if reader is None:
            return 0
        keys = [
            k
            for k, e in reader.entries.items()
            if k.stream == stream and subscriber in e.subscribers
        ]
        for key in keys:
            reader.remove(key, subscriber)
        self._stop_if_idle(topic)
        return len(keys)

    def unsubscribe_all(self, subscriber: Subscriber) -> None:
        for topic, reader in list(self.readers.items()):
            for key in [k for k, e in reader.entries.items() if subscriber in e.subscribers]:
                reader.remove(key, subscriber)
            self._stop_if_idle(topic)

    def _stop_if_idle(self, topic: str) -> None:
        reader = self.readers.get(topic)
        if reader is None or reader.entries:
            return
        del self.readers[topic]
        task = self._tasks.pop(topic)
        task.cancel()
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
