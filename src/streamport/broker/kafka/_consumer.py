"""`KafkaConsumer`: the Consumer seam on a librdkafka consumer driven by one dedicated thread.

librdkafka's consumer must be polled continuously to take part in group rebalances, so a thread
owned by the consumer polls it all the time and is the only code that touches it (the door for
its blocking calls). Records go to a bounded buffer on the event loop's side, which ``fetch()``
drains; other calls (seek, commit, offsets) are commands that the thread runs between polls.

Everything the thread tells the loop (records, assignments, command results) goes through
``call_soon_threadsafe`` in order. Each partition has a *generation* that the thread bumps when a
seek or an assignment moves its position; the loop drops buffered records of an older generation,
so no record from before a seek is ever returned after it.
"""

from __future__ import annotations

import asyncio
import enum
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Self, TypeVar

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from streamport.broker.base import ConsumedRecord, Headers, OffsetReset, TopicPartition
from streamport.broker.kafka._errors import translate, translated
from streamport.errors import (
    BrokerClosed,
    BrokerError,
    BrokerUnavailable,
    InvalidOffset,
    StreamportError,
    UnknownTopic,
)

T = TypeVar("T")

# Records fetched ahead of the application. At this many the thread pauses the partitions (it
# keeps polling, for rebalances) and resumes them once fetch() has drained half.
BUFFER_RECORDS = 10_000
# Commands waiting for the thread; each is awaited by its caller, so this only fills when
# hundreds of coroutines use one consumer at once, and then the next call fails retriably.
_COMMANDS = 256
_POLL_SECONDS = 0.02
_BATCH = 500


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class _Command:
    __slots__ = ("fn", "future", "topic")

    def __init__(
        self, fn: Callable[[RdConsumer], Any], future: asyncio.Future[Any], topic: str | None
    ) -> None:
        self.fn = fn
        self.future = future
        self.topic = topic


def _tp(tp: KafkaTopicPartition) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


class KafkaConsumer:
    """A `Consumer` on Kafka. Create it with `KafkaBroker.consumer()`."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        topics: list[str],
        *,
        group: str | None,
        auto_offset_reset: OffsetReset,
        request_timeout: float,
        on_close: Callable[[KafkaConsumer], None],
    ) -> None:
        self._topics = topics
        self._group = group
        self._reset: OffsetReset = auto_offset_reset
        self._timeout = request_timeout
        self._on_close = on_close
        self._settings: dict[str, Any] = {
            # A consumer without a group never joins one: it assigns partitions itself.
            "group.id": group or f"streamport-unused-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": auto_offset_reset,
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            **settings,
        }
        self._state = _State.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._commands: queue.Queue[_Command] = queue.Queue(maxsize=_COMMANDS)
        # Loop side: what the application sees.
        self._buffer: deque[ConsumedRecord] = deque()
        # Records handed to the loop (written by the thread only) and records that left the
        # buffer (written by the loop only); their difference is the read-ahead the thread
        # paces itself by, counting batches still on their way to the loop.
        self._handed = 0
        self._taken = 0
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._expected: dict[TopicPartition, int | None] = {}
        self._data = asyncio.Event()
        self._assigned = asyncio.Event()
        self._error: StreamportError | None = None
        self._failure: StreamportError | None = None
        # Thread side.
        self._generations: dict[TopicPartition, int] = {}
        self._paused = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._state is not _State.NEW:
            if self._state is _State.CLOSED:
                raise BrokerClosed("the consumer is closed")
            return
        self._loop = asyncio.get_running_loop()
        self._state = _State.OPEN
        self._thread = threading.Thread(
            target=self._run, name="streamport-kafka-consumer", daemon=True
        )
        self._thread.start()
        try:
            # A group member is ready once the group gave it its partitions (maybe none).
            await asyncio.wait_for(self._assigned.wait(), self._timeout)
        except TimeoutError:
            await self.aclose()
            raise BrokerUnavailable(
                f"the consumer got no partition assignment within {self._timeout:.0f}s"
            ) from None
        except BaseException:
            await self.aclose()
            raise
        if self._failure is not None:
            failure = self._failure
            await self.aclose()
            raise failure

    async def aclose(self) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._fail(BrokerClosed("the consumer is closed"))
        self._on_close(self)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        rd: RdConsumer | None = None
        try:
            with translated(topic=self._topics[0]):
                rd = RdConsumer(self._settings)
                self._check_topics(rd)
                if self._group is None:
                    self._assign_all(rd)
                else:
                    rd.subscribe(
                        self._topics,
                        on_assign=self._on_assign,
                        on_revoke=self._on_revoke,
                        on_lost=self._on_revoke,
                    )
                while not self._stop.is_set():
                    self._run_commands(rd)
                    self._pace(rd)
                    messages = rd.consume(_BATCH if not self._paused else 1, _POLL_SECONDS)
                    if messages:
                        self._hand_over_messages(messages)
        except StreamportError as exc:
            self._to_loop(self._fail, exc)
        except Exception as exc:
            failure = BrokerError(f"the Kafka consumer thread failed: {exc!r}")
            failure.__cause__ = exc
            self._to_loop(self._fail, failure)
        finally:
            self._drain_commands()
            if rd is not None:
                try:
                    rd.close()  # leaves the group at once, so the others rebalance now
                except (KafkaException, RuntimeError) as exc:
                    self._to_loop(self._fail, BrokerError(f"closing the consumer failed: {exc}"))

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _check_topics(self, rd: RdConsumer) -> None:
        for topic in self._topics:
            found = rd.list_topics(topic=topic, timeout=self._timeout).topics.get(topic)
            if found is None or found.error is not None:
                raise UnknownTopic(topic)

    def _assign_all(self, rd: RdConsumer) -> None:
        tps = []
        for topic in self._topics:
            metadata = rd.list_topics(topic=topic, timeout=self._timeout).topics[topic]
            tps += [KafkaTopicPartition(topic, p) for p in sorted(metadata.partitions)]
        self._assign(rd, self._resolve(rd, tps, committed=False))

    def _resolve(
        self, rd: RdConsumer, tps: list[KafkaTopicPartition], *, committed: bool
    ) -> list[KafkaTopicPartition]:
        """Explicit start offsets: the committed one if valid, else per auto_offset_reset.

        Resolving here (instead of letting librdkafka resolve lazily) fixes "latest" at the
        moment of assignment, so a record produced right after start() is never skipped.
        """
        stored = {}
        if committed:
            found = self._retrying(lambda: rd.committed(tps, self._timeout))
            stored = {(tp.topic, tp.partition): tp.offset for tp in found}
        resolved = []
        for tp in tps:
            marks = self._retrying(partial(rd.get_watermark_offsets, tp, self._timeout))
            if marks is None:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no watermarks"))
            low, high = marks
            offset = stored.get((tp.topic, tp.partition), -1) if committed else -1
            if not low <= offset <= high:
                offset = low if self._reset == "earliest" else high
            resolved.append(KafkaTopicPartition(tp.topic, tp.partition, offset))
        return resolved

    def _retrying(self, call: Callable[[], T]) -> T:
        """`call`, retried while Kafka says "not now" (a coordinator moving after a restart)."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return call()
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and isinstance(
                    translate(error), BrokerUnavailable
                )
                if not retriable or time.monotonic() > deadline or self._stop.is_set():
                    raise
            time.sleep(0.1)

    def _assign(self, rd: RdConsumer, tps: list[KafkaTopicPartition]) -> None:
        rd.assign(tps)
        if self._paused:
            rd.pause(tps)
        starts = {}
        for tp in tps:
            key = _tp(tp)
            self._generations[key] = self._generations.get(key, 0) + 1
            starts[key] = (tp.offset, self._generations[key])
        self._to_loop(self._on_assigned, starts)

    def _on_assign(self, rd: RdConsumer, tps: list[KafkaTopicPartition]) -> None:
        self._assign(rd, self._resolve(rd, tps, committed=True))

    def _on_revoke(self, rd: RdConsumer, tps: list[KafkaTopicPartition]) -> None:
        self._to_loop(self._on_revoked, frozenset(_tp(tp) for tp in tps))

    def _pace(self, rd: RdConsumer) -> None:
        backlog = self._handed - self._taken
        if not self._paused and backlog >= BUFFER_RECORDS:
            rd.pause(rd.assignment())
            self._paused = True
        elif self._paused and backlog <= BUFFER_RECORDS // 2:
            rd.resume(rd.assignment())
            self._paused = False

    def _hand_over_messages(self, messages: list[Message]) -> None:
        records: list[tuple[ConsumedRecord, int]] = []
        error: KafkaError | None = None
        for message in messages:
            failed = message.error()
            if failed is not None:
                if failed.code() != KafkaError._PARTITION_EOF:
                    error = failed
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue  # only error messages lack these, and those were handled above
            _, timestamp = message.timestamp()
            key, value = message.key(), message.value()
            record = ConsumedRecord(
                topic=topic,
                partition=partition,
                offset=offset,
                key=key if isinstance(key, bytes) else None,
                value=value if isinstance(value, bytes) else b"",
                headers=_headers(message),
                timestamp_ms=timestamp,
            )
            records.append((record, self._generations.get(TopicPartition(topic, partition), 0)))
        self._handed += len(records)
        self._to_loop(self._on_records, records, error)

    def _run_commands(self, rd: RdConsumer) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                with translated(topic=command.topic):
                    result = command.fn(rd)
            except StreamportError as exc:
                self._to_loop(_settle, command.future, None, exc)
            else:
                self._to_loop(_settle, command.future, result, None)

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._to_loop(_settle, command.future, None, BrokerClosed("the consumer is closed"))

    # -- loop side -------------------------------------------------------------------------

    def _on_assigned(self, starts: dict[TopicPartition, tuple[int, int]]) -> None:
        self._drop(lambda record: True)
        self._assignment = frozenset(starts)
        self._positions = {tp: offset for tp, (offset, _) in starts.items()}
        self._expected = {tp: generation for tp, (_, generation) in starts.items()}
        self._assigned.set()

    def _on_revoked(self, tps: frozenset[TopicPartition]) -> None:
        self._drop(lambda record: TopicPartition(record.topic, record.partition) in tps)
        self._assignment -= tps
        for tp in tps:
            self._positions.pop(tp, None)
            self._expected.pop(tp, None)

    def _on_records(
        self, records: list[tuple[ConsumedRecord, int]], error: KafkaError | None
    ) -> None:
        for record, generation in records:
            if self._expected.get(TopicPartition(record.topic, record.partition)) == generation:
                self._buffer.append(record)
            else:
                self._taken += 1
        if error is not None:
            self._error = translate(error, topic=self._topics[0])
        if self._buffer or self._error is not None:
            self._data.set()

    def _drop(self, match: Callable[[ConsumedRecord], bool]) -> None:
        kept = deque(record for record in self._buffer if not match(record))
        self._taken += len(self._buffer) - len(kept)
        self._buffer = kept
        if not self._buffer:
            self._data.clear()

    def _fail(self, failure: StreamportError) -> None:
        if self._failure is None:
            self._failure = failure
        self._data.set()
        self._assigned.set()

    def _check_open(self) -> None:
        if self._state is _State.NEW:
            raise BrokerError("call start() (or use `async with`) before using the consumer")
        if self._failure is not None:
            raise self._failure

    async def _call(self, fn: Callable[[RdConsumer], T], *, topic: str | None = None) -> T:
        """Run `fn` on the consumer's thread, between two polls."""
        self._check_open()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            self._commands.put_nowait(_Command(fn, future, topic))
        except queue.Full:
            raise BrokerUnavailable("too many concurrent calls on one consumer") from None
        return await future

    # -- the Consumer seam -----------------------------------------------------------------

    async def fetch(self, max_records: int = 1000, timeout: float = 1.0) -> list[ConsumedRecord]:
        self._check_open()
        if not self._buffer and self._error is None:
            try:
                await asyncio.wait_for(self._data.wait(), timeout)
            except TimeoutError:
                return []
            self._check_open()
        if not self._buffer and self._error is not None:
            error, self._error = self._error, None
            self._data.clear()
            raise error
        records: list[ConsumedRecord] = []
        while self._buffer and len(records) < max_records:
            record = self._buffer.popleft()
            self._positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
            records.append(record)
        self._taken += len(records)
        if not self._buffer:
            self._data.clear()
        return records

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check_open()
        if self._group is None:
            raise BrokerError("a consumer without a group cannot commit; pass group= to consumer()")
        wanted = dict(self._positions if offsets is None else offsets)
        if not wanted:
            return
        timeout = self._timeout

        def commit(rd: RdConsumer) -> None:
            for tp, offset in wanted.items():
                _, high = rd.get_watermark_offsets(
                    KafkaTopicPartition(tp.topic, tp.partition), timeout=timeout
                )
                # Kafka would store any offset; the seam promises what the embedded log does.
                if not 0 <= offset <= high:
                    raise InvalidOffset(
                        f"cannot commit offset {offset} for {tp.topic}[{tp.partition}]: "
                        f"it holds offsets up to {high} (the high watermark)"
                    )
            results = rd.commit(
                offsets=[KafkaTopicPartition(t, p, o) for (t, p), o in wanted.items()],
                asynchronous=False,
            )
            for result in results or ():
                if result.error is not None:
                    raise KafkaException(result.error)

        await self._call(commit, topic=next(iter(wanted)).topic)

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self._check_assigned([tp])
        timeout = self._timeout

        def check(rd: RdConsumer) -> None:
            low, high = rd.get_watermark_offsets(
                KafkaTopicPartition(tp.topic, tp.partition), timeout=timeout
            )
            if not 0 <= offset <= high:
                raise InvalidOffset(
                    f"cannot seek {tp.topic}[{tp.partition}] to {offset}: "
                    f"it holds offsets {low} to {high}"
                )

        await self._call(check, topic=tp.topic)
        await self._seek({tp: offset})

    async def seek_to_beginning(self, tps: Sequence[TopicPartition] | None = None) -> None:
        await self._seek_to(tps, lambda low, high, _: low)

    async def seek_to_end(self, tps: Sequence[TopicPartition] | None = None) -> None:
        await self._seek_to(tps, lambda low, high, _: high)

    async def seek_to_timestamp(
        self, timestamp_ms: int, tps: Sequence[TopicPartition] | None = None
    ) -> None:
        await self._seek_to(
            tps, lambda low, high, found: high if found < 0 else found, timestamp_ms
        )

    async def _seek_to(
        self,
        tps: Sequence[TopicPartition] | None,
        choose: Callable[[int, int, int], int],
        timestamp_ms: int | None = None,
    ) -> None:
        targets = list(self._assignment if tps is None else tps)
        self._check_assigned(targets)
        if not targets:
            return
        timeout = self._timeout

        def resolve(rd: RdConsumer) -> dict[TopicPartition, int]:
            found: dict[TopicPartition, int] = {}
            if timestamp_ms is not None:
                query = [KafkaTopicPartition(t, p, timestamp_ms) for t, p in targets]
                for tp in rd.offsets_for_times(query, timeout=timeout):
                    if tp.error is not None:
                        raise KafkaException(tp.error)
                    found[_tp(tp)] = tp.offset
            offsets = {}
            for target in targets:
                low, high = rd.get_watermark_offsets(
                    KafkaTopicPartition(target.topic, target.partition), timeout=timeout
                )
                offsets[target] = choose(low, high, found.get(target, -1))
            return offsets

        await self._seek(await self._call(resolve, topic=targets[0].topic))

    async def _seek(self, offsets: dict[TopicPartition, int]) -> None:
        # Records buffered before the seek are dropped now; those the thread fetches until it
        # applies the seek carry the old generation and are dropped when they arrive.
        self._drop(lambda record: TopicPartition(record.topic, record.partition) in offsets)
        for tp, offset in offsets.items():
            self._positions[tp] = offset
            self._expected[tp] = None

        def apply(rd: RdConsumer) -> dict[TopicPartition, int]:
            generations = {}
            for tp, offset in offsets.items():
                rd.seek(KafkaTopicPartition(tp.topic, tp.partition, offset))
                self._generations[tp] = self._generations.get(tp, 0) + 1
                generations[tp] = self._generations[tp]
            return generations

        generations = await self._call(apply, topic=next(iter(offsets)).topic)
        for tp, generation in generations.items():
            if tp in self._assignment:
                self._expected[tp] = generation

    def _check_assigned(self, tps: Sequence[TopicPartition]) -> None:
        self._check_open()
        missing = [tp for tp in tps if tp not in self._assignment]
        if missing:
            raise BrokerError(
                f"partitions {sorted(missing)} are not assigned to this consumer; "
                f"it has {sorted(self._assignment)}"
            )

    def assignment(self) -> frozenset[TopicPartition]:
        return self._assignment

    async def position(self, tp: TopicPartition) -> int:
        self._check_assigned([tp])
        return self._positions[tp]


def _headers(message: Message) -> Headers:
    raw = message.headers()
    if not raw:
        return ()
    pairs = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (name, value if isinstance(value, bytes) else (value or "").encode())
        for name, value in pairs
    )


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
