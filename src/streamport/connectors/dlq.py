"""The dead-letter topic: poison records with the error attached as headers.

Headers added to the original record's: ``x-error`` (the message), ``x-error-class``,
``x-connector``, and where the record came from: ``x-source-topic``, ``x-source-partition``,
``x-source-offset`` (destinations). Key and value are kept as they were, so a fixed record can be
replayed from the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from streamport.broker import Headers, Record
from streamport.connectors.metrics import BoundMetrics
from streamport.connectors.retry import Backoff, retry
from streamport.connectors.transport import Transport

log = logging.getLogger("streamport.connectors")


def error_headers(
    error: BaseException, connector: str, origin: tuple[str, int, int] | None = None
) -> Headers:
    # Header values are bytes; the message is cut so one huge error cannot make the record
    # too large for the broker.
    headers: list[tuple[str, bytes]] = [
        ("x-error", str(error)[:2000].encode()),
        ("x-error-class", type(error).__name__.encode()),
        ("x-connector", connector.encode()),
    ]
    if origin is not None:
        headers += [
            ("x-source-topic", origin[0].encode()),
            ("x-source-partition", str(origin[1]).encode()),
            ("x-source-offset", str(origin[2]).encode()),
        ]
    return tuple(headers)


class DeadLetters:
    """Sends poison records to one topic, retrying transient produce failures (a dead letter
    must not be lost: the offset of its record is committed after it is durable)."""

    def __init__(
        self,
        transport: Transport,
        topic: str,
        connector: str,
        metrics: BoundMetrics,
        backoff: Backoff,
        stop: asyncio.Event,
    ) -> None:
        self.topic = topic
        self._transport = transport
        self._connector = connector
        self._metrics = metrics
        self._backoff = backoff
        self._stop = stop

    async def send(
        self,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        error: BaseException,
        origin: tuple[str, int, int] | None = None,
    ) -> None:
        log.warning("%s: dead-lettering a record to %s: %s", self._connector, self.topic, error)
        record = Record(
            value=value, key=key, headers=headers + error_headers(error, self._connector, origin)
        )
        await self.send_records([record])

    async def send_records(self, records: Sequence[Record]) -> None:
        await retry(
            lambda: self._transport.produce(self.topic, records),
            self._backoff,
            stop=self._stop,
            on_retry=self._metrics.retried,
            what=f"dead-letter produce to {self.topic}",
        )
        self._metrics.dead_lettered(len(records))
