"""Topic metrics for the Reader API: bytes per second and active streams, sampled periodically.

The fan-out reader of a topic feeds every record it reads (`TopicMetrics.add`); a sample is taken
every ``interval`` seconds (`TopicMetrics.tick`) and the last ``window`` seconds of samples are kept
(a bounded deque: the oldest sample falls off when it is full), which is what
``SubscribeToTopicMetrics`` returns.

Records replayed when a reader starts (see ``fanout.py``) are bucketed by their broker timestamp,
so a fresh reader already has a history; their ``activeStreams`` is the count at the first tick,
as the count at that past moment is not known.

Example::

    metrics = TopicMetrics("cars", interval=1.0)
    metrics.add(120, now_ms)
    sample = metrics.tick(active_streams=3, now=time.time())
"""

from __future__ import annotations

import collections
import math
from datetime import UTC, datetime
from typing import Any

from streamport.model import format_datetime

__all__ = ["MetricsSample", "TopicMetrics"]


class MetricsSample:
    __slots__ = ("active_streams", "bytes_per_second", "timestamp")

    def __init__(self, timestamp: float, bytes_per_second: float, active_streams: int) -> None:
        self.timestamp = timestamp
        self.bytes_per_second = bytes_per_second
        self.active_streams = active_streams

    def to_api(self, topic_id: str, topic_name: str) -> dict[str, Any]:
        """The Reader API ``TopicMetrics`` payload (camelCase)."""
        return {
            "timestamp": format_datetime(datetime.fromtimestamp(self.timestamp, UTC)),
            "topicId": topic_id,
            "topicName": topic_name,
            "bytesPerSecond": self.bytes_per_second,
            "activeStreams": self.active_streams,
        }


class TopicMetrics:
    """Byte counts in ``interval``-second buckets, turned into samples by `tick`."""

    def __init__(self, topic: str, *, interval: float = 1.0, window: float = 300.0) -> None:
        self.topic = topic
        self.interval = interval
        self.samples: collections.deque[MetricsSample] = collections.deque(
            maxlen=max(1, math.ceil(window / interval))
        )
        # bucket index (time // interval) -> bytes; only buckets not yet sampled are kept
        self._buckets: dict[int, int] = {}
        self._sampled_up_to: int | None = None  # first bucket index not yet turned into a sample
        self.records = 0
        self.bytes = 0

    def add(self, size: int, at: float) -> None:
        """Count a record of `size` bytes seen at `at` (seconds since the Unix epoch)."""
        self.records += 1
        self.bytes += size
        bucket = int(at // self.interval)
        if self._sampled_up_to is not None and bucket < self._sampled_up_to:
            bucket = self._sampled_up_to  # late: count it in the next sample rather than drop it
        self._buckets[bucket] = self._buckets.get(bucket, 0) + size

    def tick(self, active_streams: int, now: float) -> MetricsSample | None:
        """Close every complete bucket up to `now`; return the newest sample (None if none)."""
        current = int(now // self.interval)
        start = self._sampled_up_to
        if start is None:
            # first tick: materialise the replayed history (only buckets that had data) ...
            for bucket in sorted(b for b in self._buckets if b < current - 1):
                self._sample(bucket, active_streams)
            start = current - 1
        newest: MetricsSample | None = None
        # ... then one sample per interval, empty intervals included (bytesPerSecond 0)
        first = max(start, current - (self.samples.maxlen or 1))
        for bucket in range(first, current):
            newest = self._sample(bucket, active_streams)
        self._sampled_up_to = current
        for bucket in [b for b in self._buckets if b < current]:
            del self._buckets[bucket]
        return newest

    def _sample(self, bucket: int, active_streams: int) -> MetricsSample:
        size = self._buckets.get(bucket, 0)
        sample = MetricsSample((bucket + 1) * self.interval, size / self.interval, active_streams)
        self.samples.append(sample)
        return sample

    def history(self) -> list[MetricsSample]:
        return list(self.samples)
