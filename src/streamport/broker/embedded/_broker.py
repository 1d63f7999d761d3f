"""The embedded broker: topics, produce with group commit, retention, consumer groups.

Blocking work goes through two visible doors, each for a reason:

* every change to files (appends, segment rolls and deletions, topic creation and deletion,
  offset commits) goes through the dedicated writer thread of ``_writer`` — a bounded queue that
  turns whatever is queued into one write per file (group commit) and keeps those changes in
  order;
* reads of acknowledged bytes (fetch, seek by timestamp) and startup recovery go through
  ``asyncio.to_thread``: they never change a file, so they run beside the writer.

The event loop owns every in-memory structure (topics, segment indexes, watermarks, groups);
the writer thread reports back with ``call_soon_threadsafe``, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Literal, Self

from streamport.broker.base import (
    OffsetReset,
    Record,
    RecordMetadata,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    Watermarks,
    validate_topic_name,
)
from streamport.broker.embedded._consumer import EmbeddedConsumer
from streamport.broker.embedded._datadir import DataDir, _info
from streamport.broker.embedded._frame import encode_payload
from streamport.broker.embedded._log import PartitionLog
from streamport.broker.embedded._offsets import OffsetStore
from streamport.broker.embedded._route import group, max_timestamp, metadata, route
from streamport.broker.embedded._segment import Segment, recover_partition, segment_name
from streamport.broker.embedded._writer import PartitionFile, Writer
from streamport.errors import (
    BrokerClosed,
    DataDirError,
    InvalidOffset,
    RecordTooLarge,
    TopicExists,
    UnknownTopic,
    ValidationError,
)

log = logging.getLogger(__name__)

FsyncPolicy = Literal["always", "never"]


class BrokerState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSED = "closed"


class _Topic:
    __slots__ = ("info", "logs", "sticky")

    def __init__(self, info: TopicInfo, logs: list[PartitionLog]) -> None:
        self.info = info
        self.logs = logs
        self.sticky = -1

    def next_sticky(self) -> int:
        self.sticky = (self.sticky + 1) % self.info.partitions
        return self.sticky


class EmbeddedBroker:
    """A partitioned log in one directory, served from this process.

    Example::

        async with EmbeddedBroker(Path("/var/lib/streamport")) as broker:
            await broker.create_topic("telemetry", TopicConfig(partitions=4))
            [meta] = await broker.produce("telemetry", [Record(b"42", key=b"car-1")])

    ``fsync="always"`` fsyncs before every acknowledgement (survives power loss); the default
    ``"never"`` acknowledges once ``write()`` returned (survives a kill of the process).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        fsync: FsyncPolicy = "never",
        max_record_bytes: int = 1 << 20,
        segment_bytes: int = 64 << 20,
        retention_check_interval: float = 30.0,
    ) -> None:
        if fsync not in ("always", "never"):
            raise ValidationError(
                f"fsync must be 'always' or 'never', not {fsync!r}", field="fsync"
            )
        self.path = Path(path)
        self.fsync = fsync
        self.max_record_bytes = max_record_bytes
        self.segment_bytes = segment_bytes
        self.retention_check_interval = retention_check_interval
        self.state = BrokerState.NEW
        self.retention_failures = 0  # retention passes that raised (each one is also logged)
        self._data: DataDir | None = None
        self._writer: Writer | None = None
        self._topics: dict[str, _Topic] = {}
        self._creating: set[str] = set()
        self._committed: dict[tuple[str, str], dict[int, int]] = {}
        self._groups: dict[str, list[EmbeddedConsumer]] = {}
        self._consumers: set[EmbeddedConsumer] = set()
        self._retention_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self.state is not BrokerState.NEW:
            raise BrokerClosed(f"the broker cannot start: it is {self.state.value}")
        self.state = BrokerState.STARTING
        try:
            self._data = await asyncio.to_thread(DataDir.open, self.path)
            offsets, topics = await asyncio.to_thread(self._recover, self._data)
        except BaseException:
            if self._data is not None:
                self._data.close()
            self.state = BrokerState.CLOSED
            raise
        self._committed = offsets[1]
        self._topics = {t.info.name: t for t in topics}
        self._writer = Writer(offsets[0], fsync=self.fsync == "always")
        self._writer.files = [lg.file for t in topics for lg in t.logs]
        self._writer.start()
        self._retention_task = asyncio.create_task(self._retention_loop(), name="log-retention")
        self.state = BrokerState.RUNNING

    def _recover(
        self, data: DataDir
    ) -> tuple[tuple[OffsetStore, dict[tuple[str, str], dict[int, int]]], list[_Topic]]:
        topics = []
        for info in data.load_topics():
            logs = []
            for p in range(info.partitions):
                directory = data.partition_dir(info.name, p)
                if not directory.is_dir():
                    raise_missing(directory)
                segments = recover_partition(directory)
                logs.append(self._new_log(info.name, p, directory, segments))
            topics.append(_Topic(info, logs))
        store = OffsetStore(data.offsets_path, fsync=self.fsync == "always")
        try:
            committed = store.load()
        except BaseException:
            store.close()
            raise
        return (store, committed), topics

    def _new_log(
        self, topic: str, p: int, directory: Path, segments: list[Segment]
    ) -> PartitionLog:
        file = PartitionFile(directory, segments[-1], segment_bytes=self.segment_bytes)
        return PartitionLog(topic, p, directory, segments, file)

    async def aclose(self) -> None:
        if self.state is BrokerState.CLOSED:
            return
        self.state = BrokerState.CLOSED
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        for consumer in list(self._consumers):
            await consumer.aclose()
        if self._writer is not None:
            await self._writer.aclose()
        if self._data is not None:
            self._data.close()

    def _running(self) -> Writer:
        if self.state is not BrokerState.RUNNING or self._writer is None:
            raise BrokerClosed(f"the broker is {self.state.value}, not running")
        return self._writer

    def _topic(self, name: str) -> _Topic:
        self._running()
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(name) from None

    # --- topics ------------------------------------------------------------------------------

    async def create_topic(self, name: str, config: TopicConfig | None = None) -> TopicInfo:
        writer = self._running()
        validate_topic_name(name)
        config = config or TopicConfig()
        if config.partitions < 1:
            raise ValidationError(
                f"partitions must be at least 1, not {config.partitions}", field="partitions"
            )
        for field in ("retention_ms", "retention_bytes"):
            if getattr(config, field) < -1:
                raise ValidationError(f"{field} must be -1 (unlimited) or positive", field=field)
        if name in self._topics or name in self._creating:
            raise TopicExists(name)
        assert self._data is not None
        self._creating.add(name)
        try:
            await writer.call(
                partial(self._data.create_topic, name, config, fsync=self.fsync == "always")
            )
        finally:
            self._creating.discard(name)
        info = _info(name, config)
        logs = []
        for p in range(config.partitions):
            directory = self._data.partition_dir(name, p)
            logs.append(
                self._new_log(name, p, directory, [Segment(directory / segment_name(0), 0)])
            )
        writer.files.extend(lg.file for lg in logs)
        self._topics[name] = _Topic(info, logs)
        return info

    async def list_topics(self) -> list[TopicInfo]:
        self._running()
        return [t.info for t in sorted(self._topics.values(), key=lambda t: t.info.name)]

    async def describe_topic(self, name: str) -> TopicInfo:
        return self._topic(name).info

    async def delete_topic(self, name: str) -> None:
        topic = self._topic(name)
        writer = self._running()
        assert self._data is not None
        del self._topics[name]
        for consumer in list(self._consumers):
            consumer._topic_deleted(name)
        for key in [k for k in self._committed if k[1] == name]:
            del self._committed[key]
        data, files = self._data, [lg.file for lg in topic.logs]

        def delete() -> None:
            for f in files:
                f.close()
                f.deleted = True
            writer.files[:] = [f for f in writer.files if not f.deleted]
            data.delete_topic(name)
            writer.offsets.delete_topic(name)

        await writer.call(delete)

    # --- produce -----------------------------------------------------------------------------

    async def produce(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        t = self._topic(topic)
        writer = self._running()
        if not records:
            return []
        now = time.time_ns() // 1_000_000
        parts = route(records, t.info.partitions, t.next_sticky, topic)
        groups, indexes = group(records, parts)
        batches = []
        for p, recs in groups.items():
            payload = encode_payload(recs)
            if len(payload) > self.max_record_bytes:
                self._check_sizes(records)
            batches.append((t.logs[p], payload, len(recs), now, max_timestamp(recs, now)))
        results = await writer.append_many(
            [
                (
                    (lg.file, payload, count, bts, mts),
                    partial(lg.on_appended, count, bts, mts, payload),
                )
                for lg, payload, count, bts, mts in batches
            ]
        )
        bases = {p: res.base_offset for p, res in zip(groups, results, strict=True)}
        return metadata(len(records), bases, indexes)

    def _check_sizes(self, records: Sequence[Record]) -> None:
        limit = self.max_record_bytes
        for i, r in enumerate(records):
            size = len(r.value) + len(r.key or b"") + sum(len(k) + len(v) for k, v in r.headers)
            if size > limit:
                raise RecordTooLarge(
                    f"records[{i}] is {size} bytes (key, value and headers), over the limit of "
                    f"{limit} bytes; split it or raise max_record_bytes",
                    field=f"records[{i}]",
                )

    # --- offsets -----------------------------------------------------------------------------

    async def watermarks(self, topic: str) -> list[Watermarks]:
        return [Watermarks(lg.low, lg.high) for lg in self._topic(topic).logs]

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        self._topic(topic)
        return dict(self._committed.get((group, topic), {}))

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        t = self._topic(topic)
        done = self._committed.get((group, topic), {})
        return {
            lg.partition: max(0, lg.high - max(done.get(lg.partition, lg.low), lg.low))
            for lg in t.logs
        }

    async def _commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        writer = self._running()
        rows = []
        for tp, offset in offsets.items():
            lg = self._log(tp)
            if not 0 <= offset <= lg.high:
                raise InvalidOffset(
                    f"cannot commit offset {offset} for {tp.topic}[{tp.partition}]: it must be "
                    f"between 0 and the high watermark {lg.high} (the next offset to read)"
                )
            rows.append((group, tp.topic, tp.partition, offset))

        def apply(_: None) -> None:
            for g, topic, p, off in rows:
                if topic in self._topics:
                    self._committed.setdefault((g, topic), {})[p] = off

        await writer.commit(rows, apply)

    def _log(self, tp: TopicPartition) -> PartitionLog:
        t = self._topic(tp.topic)
        if not 0 <= tp.partition < t.info.partitions:
            raise InvalidOffset(
                f"topic {tp.topic!r} has no partition {tp.partition} (it has {t.info.partitions})"
            )
        return t.logs[tp.partition]

    # --- consumers ---------------------------------------------------------------------------

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        auto_offset_reset: OffsetReset = "latest",
    ) -> EmbeddedConsumer:
        if isinstance(topics, str):
            raise ValidationError(
                "topics must be a list of topic names, not a string", field="topics"
            )
        if auto_offset_reset not in ("earliest", "latest"):
            raise ValidationError(
                f"auto_offset_reset must be 'earliest' or 'latest', not {auto_offset_reset!r}",
                field="auto_offset_reset",
            )
        return EmbeddedConsumer(self, list(topics), group, auto_offset_reset)

    def _attach(self, consumer: EmbeddedConsumer) -> None:
        for name in consumer.topics:
            self._topic(name)
        self._consumers.add(consumer)
        if consumer.group is None:
            consumer._set_assignment(
                frozenset(
                    TopicPartition(name, p)
                    for name in consumer.topics
                    for p in range(self._topics[name].info.partitions)
                )
            )
        else:
            self._groups.setdefault(consumer.group, []).append(consumer)
            self._rebalance(consumer.group)

    def _detach(self, consumer: EmbeddedConsumer) -> None:
        self._consumers.discard(consumer)
        if consumer.group is not None and consumer in self._groups.get(consumer.group, []):
            self._groups[consumer.group].remove(consumer)
            if self._groups[consumer.group]:
                self._rebalance(consumer.group)
            else:
                del self._groups[consumer.group]

    def _rebalance(self, group: str) -> None:
        """Share the partitions of each topic among the group's members that read it."""
        members = self._groups[group]
        shares: dict[EmbeddedConsumer, set[TopicPartition]] = {m: set() for m in members}
        turn = 0
        for name in sorted({t for m in members for t in m.topics}):
            readers = [m for m in members if name in m.topics]
            if name not in self._topics:
                continue
            for p in range(self._topics[name].info.partitions):
                shares[readers[turn % len(readers)]].add(TopicPartition(name, p))
                turn += 1
        for m in members:
            m._set_assignment(frozenset(shares[m]))

    def _initial_position(self, group: str | None, tp: TopicPartition, reset: OffsetReset) -> int:
        lg = self._log(tp)
        if group is not None:
            done = self._committed.get((group, tp.topic), {}).get(tp.partition)
            if done is not None:
                return done
        return lg.low if reset == "earliest" else lg.high

    # --- retention ---------------------------------------------------------------------------

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retention_check_interval)
            try:
                await self.enforce_retention()
            except BrokerClosed:
                return
            except Exception:
                self.retention_failures += 1
                log.exception("log retention pass failed (%d so far)", self.retention_failures)

    async def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole segments past the topics' retention; returns how many were deleted.

        Runs every ``retention_check_interval`` seconds in the background; callable directly.
        The active (last) segment is rolled first when all its records are past the time limit.
        """
        writer = self._running()
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        deleted = 0
        for t in list(self._topics.values()):
            for lg in t.logs:
                cutoff = now - t.info.retention_ms if t.info.retention_ms >= 0 else None
                active = lg.segments[-1]
                if cutoff is not None and not active.empty and active.newest_ts < cutoff:
                    new = await writer.call(partial(lg.file.roll, fsync=self.fsync == "always"))
                    lg.on_rolled(new)
                doomed = _expired(lg.segments, cutoff, t.info.retention_bytes)
                if not doomed:
                    continue
                del lg.segments[: len(doomed)]
                paths = [s.path for s in doomed]
                await writer.call(partial(_unlink_all, paths))
                deleted += len(doomed)
        return deleted


def _expired(segments: list[Segment], cutoff: int | None, retention_bytes: int) -> list[Segment]:
    """The oldest segments to delete (never the active, last one)."""
    count = 0
    if cutoff is not None:
        while count < len(segments) - 1 and segments[count].newest_ts < cutoff:
            count += 1
    if retention_bytes >= 0:
        excess = sum(s.size for s in segments) - retention_bytes
        by_bytes = 0
        while by_bytes < len(segments) - 1 and excess >= segments[by_bytes].size:
            excess -= segments[by_bytes].size
            by_bytes += 1
        count = max(count, by_bytes)
    return segments[:count]


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # its topic was deleted meanwhile
            os.unlink(path)


def raise_missing(directory: Path) -> None:
    raise DataDirError(f"partition directory {directory} is missing: the data directory is corrupt")
