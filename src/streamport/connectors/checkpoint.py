"""The one checkpoint of a destination: flush the destination, then commit the offsets.

Records are added as they are handed to ``write()``; `commit()` first awaits
``destination.flush()`` (retried while it fails transiently) and only then commits the next
offsets to the consumer group. A crash between the two replays the records since the last
commit: at-least-once. Connectors never commit offsets themselves.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Sequence

from streamport.connectors.base import Destination, SinkRecord
from streamport.connectors.config import DestinationConfig
from streamport.connectors.metrics import BoundMetrics
from streamport.connectors.retry import Backoff, retry
from streamport.connectors.transport import Subscription

_partition = operator.attrgetter("partition")
_offset = operator.attrgetter("offset")


class Checkpoint:
    def __init__(
        self,
        destination: Destination[DestinationConfig],
        subscription: Subscription,
        metrics: BoundMetrics,
        backoff: Backoff,
        stop: asyncio.Event,
        *,
        interval: float,
        every: int,
    ) -> None:
        self._destination = destination
        self._subscription = subscription
        self._metrics = metrics
        self._backoff = backoff
        self._stop = stop
        self._interval = interval
        self._every = every
        self._offsets: dict[int, int] = {}  # partition -> next offset to read
        self._pending = 0
        self._started = time.monotonic()
        self.commits = 0

    @property
    def pending(self) -> int:
        """Records done (written or dead-lettered) but not yet committed."""
        return self._pending

    def add(self, records: Sequence[SinkRecord]) -> None:
        partitions = set(map(_partition, records))
        if len(partitions) == 1:
            # One partition (the usual batch): the highest offset in one C-level pass.
            (partition,) = partitions
            self._offsets[partition] = max(
                self._offsets.get(partition, 0), max(map(_offset, records)) + 1
            )
        else:
            for record in records:
                self._offsets[record.partition] = max(
                    self._offsets.get(record.partition, 0), record.offset + 1
                )
        self._pending += len(records)
        self._metrics.set_lag(self._pending)

    def due(self) -> bool:
        if not self._pending:
            return False
        return self._pending >= self._every or time.monotonic() - self._started >= self._interval

    async def commit(self) -> None:
        """Flush the destination, then commit. Nothing is committed if the flush fails."""
        if not self._pending:
            self._started = time.monotonic()
            return
        # The stop event is not passed: a stopping connector still finishes its last checkpoint.
        await retry(
            self._destination.flush,
            self._backoff,
            on_retry=self._metrics.retried,
            attempts=10,
            what=f"{self._destination.name} flush",
        )
        offsets = dict(self._offsets)
        await retry(
            lambda: self._subscription.commit(offsets),
            self._backoff,
            on_retry=self._metrics.retried,
            attempts=10,
            what="offset commit",
        )
        self._offsets.clear()
        self._pending = 0
        self._started = time.monotonic()
        self.commits += 1
        self._metrics.set_lag(0)
