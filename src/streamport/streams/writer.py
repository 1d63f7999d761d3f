"""The write path below the APIs: ensure the topic exists, encode, produce, await the durable ack.

Every writer (Writer HTTP API, writer hub, admin produce, SDK gateway) goes through one `Writer`, so
auto-creation, size limits and metrics behave the same everywhere. Stream messages are written in
the Quix envelope, keyed by stream id, so one stream stays on one partition and in order.

Example::

    writer = Writer(broker)
    stream_id = await writer.create_stream("cars", StreamProperties(name="lap 1"))
    await writer.write("cars", stream_id, TimeseriesData(timestamps=[1], numeric_values={"v": [1.0]}))
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence

from streamport.broker import Broker, Record, RecordMetadata, TopicConfig, validate_topic_name
from streamport.errors import TopicExists, UnknownTopic, ValidationError
from streamport.model import Message, StreamEnd, StreamEndType, StreamProperties, encode
from streamport.model.data import check_id

ProduceObserver = Callable[[str, int, int, float], None]
"""Called after each durable produce with (topic, records, value bytes, seconds)."""


class Writer:
    def __init__(
        self,
        broker: Broker,
        *,
        auto_create_topics: bool = True,
        default_partitions: int = 1,
        observe: ProduceObserver | None = None,
    ) -> None:
        self._broker = broker
        self._auto_create = auto_create_topics
        self._partitions = default_partitions
        self._observe = observe
        # Topics known to exist. Only ever grows while the process runs; a topic deleted behind our
        # back shows up as UnknownTopic on produce, which drops it from here and retries once.
        self._known: set[str] = set()
        self._creating: dict[str, asyncio.Lock] = {}
        self._joining: dict[str, _Batch] = {}  # the writes of this loop turn, per topic
        self._joint: set[asyncio.Task[None]] = set()  # joint produces under way
        # per topic, writes joined to a produce that has not returned yet (see `in_flight`)
        self._in_flight: dict[str, int] = {}

    async def ensure_topic(self, topic: str) -> None:
        """Make sure `topic` exists: create it when auto-creation is on, else raise UnknownTopic."""
        if topic in self._known:
            return
        validate_topic_name(topic)
        # One check-and-create per topic at a time in this process, so concurrent first writes
        # wait for the creation instead of racing it. The locks live only while a check runs.
        lock = self._creating.setdefault(topic, asyncio.Lock())
        try:
            async with lock:
                if topic in self._known:
                    return
                try:
                    await self._broker.describe_topic(topic)
                except UnknownTopic:
                    if not self._auto_create:
                        raise
                    # TopicExists: created by another process meanwhile, just as good.
                    with contextlib.suppress(TopicExists):
                        await self._broker.create_topic(
                            topic, TopicConfig(partitions=self._partitions)
                        )
                self._known.add(topic)
        finally:
            if not lock.locked():
                self._creating.pop(topic, None)

    async def produce(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        """Produce `records` to `topic` and return once they are durable."""
        await self.ensure_topic(topic)
        started = time.perf_counter()
        try:
            result = await self._joined(topic, records)
        except UnknownTopic:
            self._known.discard(topic)
            if not self._auto_create:
                raise
            await self.ensure_topic(topic)
            result = await self._broker.produce(topic, records)
        if self._observe is not None:
            size = sum(len(r.value) for r in records)
            self._observe(topic, len(records), size, time.perf_counter() - started)
        return result

    async def _joined(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        """Produce together with the other writes to `topic` made in the same event-loop turn.

        Many concurrent requests each writing a little is the gateway's common case; one broker
        produce call for all of them costs far less than one each. The first writer of a turn
        starts a joint task; it runs in the next turn, so every writer of this turn has joined,
        produces everything in arrival order (so per-stream order holds) and hands each writer
        its own placements. Each writer awaits its own future, set by the task itself, so it
        resumes one turn after the produce (a shield and done-callbacks would cost two more) and a
        writer that is cancelled (its client left) cannot strand the others. A joint call refused
        as invalid (say, one record too large) wrote nothing: every writer then produces alone,
        so the error reaches the request it belongs to.

        `in_flight` counts the writes of batches whose produce has not returned: it drops when
        the records are in the log, before the writers resume, so the fan-out can send them
        before the writers' acknowledgements go out.
        """
        placed: asyncio.Future[list[RecordMetadata]] = asyncio.get_running_loop().create_future()
        batch = self._joining.get(topic)
        if batch is None:
            batch = self._joining[topic] = []
            task = asyncio.ensure_future(self._produce_joint(topic, batch))
            self._joint.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(lambda done: self._joint_done(topic, batch, done))
        batch.append((records, placed))
        self._in_flight[topic] = self._in_flight.get(topic, 0) + 1
        try:
            return await placed
        except _Alone:
            return await self._broker.produce(topic, records)

    async def _produce_joint(self, topic: str, batch: _Batch) -> None:
        del self._joining[topic]  # writers from here on start the next batch
        try:
            await self._settle_joint(topic, [(p, f) for p, f in batch if not f.done()])
        finally:
            self._landed(topic, len(batch))

    async def _settle_joint(self, topic: str, waiting: _Batch) -> None:
        if not waiting:
            return
        combined = waiting[0][0] if len(waiting) == 1 else [r for part, _ in waiting for r in part]
        try:
            result = await self._broker.produce(topic, combined)
        except ValidationError as exc:
            for _, fut in waiting:
                if not fut.done():
                    fut.set_exception(exc if len(waiting) == 1 else _Alone())
            return
        except Exception as exc:  # a cancellation is settled by `_joint_done`
            for _, fut in waiting:
                if not fut.done():
                    fut.set_exception(exc)
            return
        start = 0
        for part, fut in waiting:
            if not fut.done():  # that writer was cancelled meanwhile
                fut.set_result(result[start : start + len(part)])
            start += len(part)

    def _joint_done(self, topic: str, batch: _Batch, task: asyncio.Task[None]) -> None:
        """A joint task cancelled (before it ran or mid-produce) must not leave its writers, or
        the topic's next writers who would join its batch, waiting."""
        self._joint.discard(task)
        if self._joining.get(topic) is batch:  # cancelled before it ran
            del self._joining[topic]
            self._landed(topic, len(batch))
        for _, fut in batch:
            if not fut.done():
                fut.cancel()

    def in_flight(self, topic: str) -> int:
        """Writes to `topic` joined to a produce that has not returned yet: records about to
        land in the log (the fan-out waits for them before it sends what it has)."""
        return self._in_flight.get(topic, 0)

    def _landed(self, topic: str, count: int) -> None:
        left = self._in_flight[topic] - count
        if left:
            self._in_flight[topic] = left
        else:
            del self._in_flight[topic]

    async def write(self, topic: str, stream_id: str, *messages: Message) -> list[RecordMetadata]:
        """Write `messages` of stream `stream_id` to `topic`, in order, durably."""
        return await self.write_encoded(topic, stream_id, *map(encode, messages))

    async def write_encoded(
        self, topic: str, stream_id: str, *values: bytes
    ) -> list[RecordMetadata]:
        """`write` for messages already in the envelope, e.g. by
        :func:`~streamport.model.spliced.parameter_data_envelope`."""
        check_stream_id(stream_id)
        key = stream_id.encode()
        return await self.produce(topic, [Record(value=value, key=key) for value in values])

    async def create_stream(self, topic: str, properties: StreamProperties | None = None) -> str:
        """Start a new stream with a fresh id; its properties make it visible to readers."""
        stream_id = str(uuid.uuid4())
        await self.write(topic, stream_id, properties or StreamProperties())
        return stream_id

    async def close_stream(
        self, topic: str, stream_id: str, end_type: StreamEndType = StreamEndType.CLOSED
    ) -> None:
        await self.write(topic, stream_id, StreamEnd(stream_end_type=end_type))


def check_stream_id(stream_id: str, field: str = "streamId") -> None:
    if not stream_id:
        raise ValidationError("stream id must not be empty", field=field)
    check_id(stream_id, field, "stream id")


class _Alone(Exception):
    """Tells a joined writer to produce its records alone (the joint call was refused)."""


_Batch = list[tuple[Sequence[Record], "asyncio.Future[list[RecordMetadata]]"]]
