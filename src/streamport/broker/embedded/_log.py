"""One partition as the event loop sees it: acknowledged segments, watermarks, waiting readers."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

from streamport.broker.base import ConsumedRecord
from streamport.broker.embedded._frame import Frame, decode_records
from streamport.broker.embedded._segment import ReadPlan, Segment, plan_read
from streamport.broker.embedded._writer import AppendResult, PartitionFile

# Bytes one fetch reads from one partition at most (always at least one whole batch).
FETCH_MAX_BYTES = 8 << 20
# Payload bytes of the newest batches each partition keeps in memory for readers that keep up.
TAIL_BYTES = 128 << 10


class PartitionLog:
    """Segments hold only acknowledged batches: readers never see a write before its ack."""

    __slots__ = (
        "directory",
        "file",
        "partition",
        "segments",
        "tail",
        "tail_bytes",
        "topic",
        "waiters",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        directory: Path,
        segments: list[Segment],
        file: PartitionFile,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.segments = segments
        self.file = file
        self.waiters: set[asyncio.Future[None]] = set()
        # The newest acknowledged batches, in offset order, so a reader that keeps up reads them
        # here in the loop instead of from the file through a worker thread (two thread
        # crossings fewer between a write and its delivery).
        self.tail: deque[Frame] = deque()
        self.tail_bytes = 0

    @property
    def low(self) -> int:
        return self.segments[0].base

    @property
    def high(self) -> int:
        return self.segments[-1].end_offset

    def on_appended(
        self, count: int, batch_ts: int, max_ts: int, payload: bytes, res: AppendResult
    ) -> None:
        """Called in the loop, in write order, once a batch is durable."""
        if res.rolled is not None:
            self.segments.append(res.rolled)
        self.segments[-1].add(res.base_offset, count, res.position, res.end, max_ts)
        self.tail.append(
            Frame(res.base_offset, count, batch_ts, max_ts, payload, res.position, res.end)
        )
        self.tail_bytes += len(payload)
        while self.tail_bytes > TAIL_BYTES and self.tail:
            self.tail_bytes -= len(self.tail.popleft().payload)
        self.wake()

    def read_tail(self, offset: int, limit: int) -> list[ConsumedRecord] | None:
        """Up to `limit` records from `offset` on, if the in-memory tail holds `offset`."""
        if not self.tail or offset < self.tail[0].base_offset:
            return None
        records: list[ConsumedRecord] = []
        for frame in self.tail:
            if frame.base_offset + frame.n_records <= offset:
                continue
            batch = decode_records(self.topic, self.partition, frame, offset, limit - len(records))
            records += batch
            if len(records) >= limit:
                break
            offset = frame.base_offset + frame.n_records
        return records

    def on_rolled(self, seg: Segment) -> None:
        self.segments.append(seg)

    def wake(self) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()

    def plan(self, offset: int, limit: int) -> ReadPlan | None:
        if offset >= self.high:
            return None
        return plan_read(self.topic, self.partition, self.segments, offset, limit, FETCH_MAX_BYTES)

    def plan_for_timestamp(self, timestamp_ms: int) -> ReadPlan | None:
        """The batch holding the first record at or after `timestamp_ms`, if there is one."""
        for seg in self.segments:
            for i, ts in enumerate(seg.max_ts):
                if ts >= timestamp_ms:
                    start = seg.positions[i]
                    end = seg.positions[i + 1] if i + 1 < len(seg.positions) else seg.size
                    offset = seg.offsets[i]
                    return ReadPlan(
                        self.topic, self.partition, seg.path, start, end, offset, 1 << 30
                    )
        return None

    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)
