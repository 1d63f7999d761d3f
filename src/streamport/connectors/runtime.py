"""Running one connector: connect with backoff, move records, checkpoint, dead-letter, stop.

Example (a bounded run, as tests do)::

    runner = Runner(RestSource(config))
    result = await runner.run(timeout=10, count=100)

``run()`` returns when `count` records went out, `timeout` seconds passed, `stop()` was called,
or a source's ``run()`` returned; it raises when the connector fails permanently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

from streamport.broker import ConsumedRecord, Headers
from streamport.connectors.base import (
    Connector,
    ConnectorState,
    Destination,
    SinkRecord,
    Source,
    SourceRecord,
)
from streamport.connectors.checkpoint import Checkpoint
from streamport.connectors.config import ConnectorConfig, DestinationConfig, SourceConfig
from streamport.connectors.dlq import DeadLetters
from streamport.connectors.metrics import BoundMetrics, ConnectorMetrics
from streamport.connectors.retry import Backoff, Stopped, is_retriable, retry, sleep
from streamport.connectors.transport import Subscription, Transport, open_transport
from streamport.errors import Backpressure, ConfigError, RecordRejected

log = logging.getLogger("streamport.connectors")

STOP_GRACE = 5.0  # seconds a source gets to return after stop() before it is cancelled
READ_AHEAD = 2  # batches a destination's runner fetches ahead of the one being written


@dataclass(frozen=True)
class RunResult:
    records_in: int
    records_out: int
    dead_letters: int
    commits: int


class Output:
    """A source's way out: `send` produces to the output topic and returns once durable."""

    def __init__(
        self,
        transport: Transport,
        topic: str,
        metrics: BoundMetrics,
        dead_letters: DeadLetters,
        backoff: Backoff,
        stopping: asyncio.Event,
        limit: int | None,
    ) -> None:
        self.topic = topic
        self.stopping = stopping
        self.metrics = metrics
        self._transport = transport
        self._dead = dead_letters
        self._backoff = backoff
        self._limit = limit
        self._sent = 0

    async def send(self, records: Sequence[SourceRecord]) -> None:
        """Produce `records` in order (retrying transient failures), then call their acks."""
        if not records:
            return
        wire = [r.to_record() for r in records]
        await retry(
            lambda: self._transport.produce(self.topic, wire),
            self._backoff,
            stop=self.stopping,
            on_retry=self.metrics.retried,
            what=f"produce to {self.topic}",
        )
        self.metrics.written(len(records))
        for record in records:
            if record.ack is not None:
                await record.ack()
        self._sent += len(records)
        if self._limit is not None and self._sent >= self._limit:
            self.stopping.set()

    async def reject(
        self, value: bytes, error: BaseException, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        """Send a record the source could not map to the dead-letter topic, with `error`."""
        self.metrics.error("permanent")
        await self._dead.send(value, key, headers, error)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`; raises `Stopped` (ending ``run()`` quietly) when stopping."""
        await sleep(seconds, self.stopping)


class Runner:
    """Runs one connector through its lifecycle against a server or Kafka."""

    def __init__(
        self,
        connector: Connector[Any],
        *,
        metrics: ConnectorMetrics | None = None,
        transport: Transport | None = None,
        instance: str | None = None,
    ) -> None:
        self.connector = connector
        self.config: ConnectorConfig = connector.config
        self.registry = metrics or ConnectorMetrics()
        self.metrics = self.registry.bind(instance or connector.name)
        self._transport = transport
        self._backoff = Backoff(self.config.retry_initial, self.config.retry_max)
        self._stop = asyncio.Event()
        self._commits = 0

    def stop(self) -> None:
        """Ask the run to end: a destination commits its last checkpoint first."""
        self._stop.set()

    def _dead_letter_topic(self, topic: str) -> str:
        return self.config.dead_letter_topic or f"{topic}-dead-letter"

    async def run(self, *, timeout: float | None = None, count: int | None = None) -> RunResult:
        # The bound covers everything, connecting included: the timer only sets the stop event.
        timer = (
            asyncio.get_running_loop().call_later(timeout, self._stop.set)
            if timeout is not None
            else None
        )
        try:
            return await self._run(count)
        finally:
            if timer is not None:
                timer.cancel()

    async def _setup(self) -> None:
        await retry(
            self.connector.setup,
            self._backoff,
            stop=self._stop,
            on_retry=self.metrics.retried,
            what=f"{self.connector.name} setup",
        )

    async def _run(self, count: int | None) -> RunResult:
        transport = self._transport or open_transport(self.config)
        # A destination connects to its outside system while the transport connects (it reads
        # nothing before both are up); a source sets up once its records have somewhere to go.
        early = (
            asyncio.ensure_future(self._setup())
            if isinstance(self.connector, Destination)
            else None
        )
        try:
            await retry(
                transport.start,
                self._backoff,
                stop=self._stop,
                on_retry=self.metrics.retried,
                what="connect to streamport",
            )
        except BaseException as exc:
            if early is not None:
                early.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await early
                try:
                    await self.connector.close()
                finally:
                    self.connector.state = ConnectorState.CLOSED
            if isinstance(exc, Stopped):
                await transport.aclose()
                return self._result()
            raise
        try:
            with contextlib.suppress(Stopped):
                await (early if early is not None else self._setup())
                self.connector.state = ConnectorState.READY
                if isinstance(self.connector, Source):
                    await self._bounded(self._run_source(transport, count))
                else:
                    assert isinstance(self.connector, Destination)
                    await self._bounded(self._run_destination(transport, count))
        finally:
            try:
                await self.connector.close()
            finally:
                self.connector.state = ConnectorState.CLOSED
                if self._transport is None:
                    await transport.aclose()
        return self._result()

    def _result(self) -> RunResult:
        m = self.metrics
        return RunResult(
            m.records_in_count, m.records_out_count, m.dead_letter_count, self._commits
        )

    async def _bounded(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when="FIRST_COMPLETED")
            if not task.done():
                self._stop.set()
                # A cooperative connector returns soon after the stop; one that does not is
                # cancelled (a destination then commits nothing more: at-least-once holds).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    return
            with contextlib.suppress(Stopped):
                task.result()
        finally:
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopped
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- sources -----------------------------------------------------------------------------

    async def _run_source(self, transport: Transport, count: int | None) -> None:
        source = cast(Source[SourceConfig], self.connector)
        topic = source.config.output_topic
        dead = DeadLetters(
            transport,
            self._dead_letter_topic(topic),
            source.name,
            self.metrics,
            self._backoff,
            self._stop,
        )
        output = Output(transport, topic, self.metrics, dead, self._backoff, self._stop, count)
        source.state = ConnectorState.RUNNING
        await source.run(output)

    # --- destinations ------------------------------------------------------------------------

    async def _run_destination(self, transport: Transport, count: int | None) -> None:
        destination = cast(Destination[DestinationConfig], self.connector)
        config = destination.config
        group = config.group or f"connector-{destination.name}-{config.input_topic}"
        subscription: Subscription = await retry(
            lambda: transport.subscribe(config.input_topic, group, config.offset_reset),
            self._backoff,
            stop=self._stop,
            on_retry=self.metrics.retried,
            what=f"subscribe to {config.input_topic}",
        )
        dead = DeadLetters(
            transport,
            self._dead_letter_topic(config.input_topic),
            destination.name,
            self.metrics,
            self._backoff,
            self._stop,
        )
        checkpoint = Checkpoint(
            destination,
            subscription,
            self.metrics,
            self._backoff,
            self._stop,
            interval=config.commit_interval,
            every=config.commit_every,
        )
        destination.state = ConnectorState.RUNNING

        async def fetch(taken: int) -> list[ConsumedRecord]:
            want = config.batch_size if count is None else min(config.batch_size, count - taken)
            return await retry(
                functools.partial(subscription.fetch, want, 0.5),
                self._backoff,
                stop=self._stop,
                on_retry=self.metrics.retried,
                what=f"fetch from {config.input_topic}",
            )

        room = asyncio.Semaphore(READ_AHEAD)  # batches fetched (or being fetched), not yet taken
        Ahead = asyncio.Future[tuple[list[SinkRecord], Any]]

        async def read_ahead(taken: int) -> tuple[list[SinkRecord], Ahead | None]:
            """The batch from `taken` on, fetched once fewer than READ_AHEAD batches wait, and
            the fetch of the batch after it, started before this one is prepared."""
            await room.acquire()
            try:
                batch = SinkRecord.batch_of(await fetch(taken))
            except BaseException:
                room.release()
                raise
            following = taken + len(batch)
            after: Ahead | None = None
            if batch and not self._stop.is_set() and (count is None or following < count):
                after = asyncio.ensure_future(read_ahead(following))
                try:
                    await asyncio.sleep(0)  # let it send its request before the CPU work below
                except asyncio.CancelledError:
                    after.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await after
                    raise
            if batch:
                try:
                    destination.prepare(batch)
                except Exception:  # write() meets it again and handles it
                    log.debug("%s prepare failed", destination.name, exc_info=True)
            return batch, after

        done = 0
        failed = False
        # Batches are fetched ahead of the one being written (up to READ_AHEAD, one fetch at a
        # time, in order) and handed to ``destination.prepare()`` as they arrive, so fetching
        # (the server's work) and decoding (ours) overlap the current write's wait for the
        # outside system. A batch is not in the checkpoint until written, so a stop or a crash
        # drops the batches read ahead uncommitted and they are read again: at-least-once.
        upcoming: Ahead | None = None
        try:
            while not self._stop.is_set() and (count is None or done < count):
                if upcoming is None:
                    upcoming = asyncio.ensure_future(read_ahead(done))
                batch, upcoming = await upcoming
                room.release()
                if batch:
                    self.metrics.read(len(batch))
                    await self._deliver(destination, dead, batch)
                    checkpoint.add(batch)
                    done += len(batch)
                if checkpoint.due():
                    await checkpoint.commit()
        except Stopped:
            pass  # stopped while waiting (backpressure, a retry): a clean stop, commit below
        except BaseException:
            failed = True
            raise
        finally:
            try:
                # The chain of batches read ahead: cancel the fetch under way (a link spawns
                # the next one only once its fetch is done, with no wait after).
                link = upcoming
                while link is not None:
                    if not link.done():
                        link.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await link
                        break
                    if link.cancelled() or link.exception() is not None:
                        break
                    link = link.result()[1]
                if not failed:
                    await checkpoint.commit()  # the last checkpoint of a clean stop
            finally:
                self._commits = checkpoint.commits
                await subscription.aclose()

    async def _deliver(
        self,
        destination: Destination[DestinationConfig],
        dead: DeadLetters,
        batch: list[SinkRecord],
    ) -> None:
        """Write `batch` until it is written, retrying transient failures forever (with
        backoff, until stopped) and sending poison records to the dead-letter topic."""
        pending = list(batch)
        attempt = 0
        while pending:
            try:
                await destination.write(pending)
            except Backpressure as exc:
                self.metrics.retried(exc)
                await sleep(exc.retry_after, self._stop)
                continue
            except RecordRejected as exc:
                if isinstance(exc.record, SinkRecord) and exc.record in pending:
                    await self._reject(dead, exc.record, exc)
                    pending.remove(exc.record)
                    continue
                await self._isolate(destination, dead, pending, exc)
                return
            except Exception as exc:
                if is_retriable(exc):
                    self.metrics.retried(exc)
                    log.warning("%s write failed (%s); retrying", destination.name, exc)
                    await sleep(self._backoff.delay(attempt), self._stop)
                    attempt += 1
                    continue
                if isinstance(exc, ConfigError):
                    # The connector cannot work as configured (bad credentials, a missing
                    # channel): stop, commit nothing, rather than dead-letter every record.
                    self.metrics.error("fatal")
                    raise
                await self._isolate(destination, dead, pending, exc)
                return
            self.metrics.written(len(pending))
            return

    async def _isolate(
        self,
        destination: Destination[DestinationConfig],
        dead: DeadLetters,
        pending: list[SinkRecord],
        exc: BaseException,
    ) -> None:
        # A permanent failure of a batch without a culprit: write the records one by one, so
        # only the poison ones go to the dead-letter topic.
        if len(pending) == 1:
            await self._reject(dead, pending[0], exc)
            return
        for record in pending:
            await self._deliver(destination, dead, [record])

    async def _reject(self, dead: DeadLetters, record: SinkRecord, exc: BaseException) -> None:
        self.metrics.error("permanent")
        await dead.send(
            record.value,
            record.key,
            record.headers,
            exc,
            (record.topic, record.partition, record.offset),
        )
