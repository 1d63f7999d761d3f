"""`Sender`: the ordered, bounded path from a topic producer to the transport (`DirectSender`
for Kafka, below; `make_sender` picks).

Any thread pushes encoded records; one task on the client's loop hands them to the transport in
batches (all that waited, up to `BATCH_RECORDS` records or about `BATCH_BYTES`), in push order,
and keeps up to `MAX_IN_FLIGHT` batches waiting for their durable acknowledgement at once
(``Transport.send`` returns once a batch is on its way, with a future of its acknowledgement).
An idle sender sends a push after `LINGER` (5 ms, as Kafka's ``linger.ms``), at once when
`WAKE_BYTES` wait or someone waits for the acknowledgements; while batches wait for their
acknowledgements, pushes gather and go out when the next acknowledgement arrives (as up to
`MAX_IN_FLIGHT` batches), so a busy producer costs one wake-up of the loop per acknowledgement,
not one per record.

Bounds: at `MAX_PENDING` unacknowledged records or `MAX_PENDING_BYTES` a pushing thread waits;
the loop thread itself (a consumer callback producing) never waits, its overshoot is bounded by
one fetched batch. A failed batch is reported to the client's error hook and raised by the next
push or wait; batches already on their way are not recalled (as with any pipelined producer, a
failure can leave a gap in an otherwise ordered stream).

A retriable failure (the connection to the gateway was lost) is not reported: once every batch
sent before it has settled, the failed batches go out again, in their order and ahead of what
was pushed meanwhile, every `RETRY_DELAY` seconds (the transport reconnects) until they are
acknowledged or `DELIVERY_TIMEOUT` seconds have passed since the first failure. A batch the
gateway wrote but whose acknowledgement was lost is written twice (at least once).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from functools import partial
from operator import itemgetter
from typing import Any

from confluent_kafka import KafkaError, Message

from streamport.broker import Record
from streamport.client._core import Core
from streamport.client._transport import KafkaTransport
from streamport.errors import StreamportError

MAX_PENDING = 20_000
MAX_PENDING_BYTES = 64 * 1024 * 1024
BATCH_RECORDS = 5_000
BATCH_BYTES = 1024 * 1024  # a batch is cut after the record that reaches this size
MAX_IN_FLIGHT = 4  # batches waiting for their acknowledgement
# An idle sender sends a push after LINGER seconds, or at once from WAKE_BYTES waiting (or when
# someone waits for the acknowledgements): each wake-up of the loop thread takes the GIL from a
# publishing thread, which on a busy machine can cost it a scheduler time slice.
LINGER = 0.005
WAKE_BYTES = 256 * 1024
RETRY_DELAY = 0.25  # seconds between sends of batches that failed retriably
DELIVERY_TIMEOUT = 60.0  # seconds of retriable failures after which a batch fails for good


class Sender:
    def __init__(self, core: Core, topic: str) -> None:
        self._core = core
        self._topic = topic
        self._queue: deque[Record] = deque()  # appended by any thread, drained by the task
        self._unacked = 0
        self._unacked_bytes = 0
        self._cond = threading.Condition()
        self._wake: asyncio.Event | None = None
        # Wake-ups cost a thread switch each (and a scheduler delay on a busy machine), so a
        # push wakes the task only when it is idle -- nothing in flight, queue empty. With
        # batches in flight, records gather until the next acknowledgement wakes the task.
        self._idle = True
        self._wake_scheduled = False  # a wake-up is on its way to the loop: no need for another
        self._lingering = False  # that wake-up is a LINGER timer (a full batch wakes at once)
        self._in_flight = 0
        self._sequence = itertools.count()  # batches in the order they were taken
        self._retry: list[tuple[int, list[Record]]] = []  # failed retriably, to send again
        self._failing_since: float | None = None  # the first retriable failure not yet healed
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def push(self, record: Record) -> None:
        loop = self._core.loop
        size = len(record.value)
        with self._cond:
            if not loop.in_loop():
                while (
                    self._unacked >= MAX_PENDING or self._unacked_bytes >= MAX_PENDING_BYTES
                ) and self.error is None:
                    self._cond.wait()
            self._raise_error()
            self._unacked += 1
            self._unacked_bytes += size
            waiting_bytes = self._unacked_bytes
        self._queue.append(record)
        if self._idle:
            if not self._wake_scheduled:
                self._wake_scheduled = True
                if waiting_bytes >= WAKE_BYTES or loop.in_loop():
                    loop.call_soon(self._wake_up)
                else:  # let records gather for LINGER seconds (as Kafka's linger.ms)
                    self._lingering = True
                    loop.call_soon(self._linger)
            elif self._lingering and waiting_bytes >= WAKE_BYTES:
                self._lingering = False
                loop.call_soon(self._wake_up)

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise StreamportError(f"an earlier write to {self._topic!r} failed: {error}") from error

    def _linger(self) -> None:
        asyncio.get_running_loop().call_later(LINGER, self._wake_up)

    def _wake_up(self) -> None:
        self._idle = False
        self._wake_scheduled = False
        self._lingering = False
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._wake is not None
        self._wake.set()

    def _take(self) -> list[Record]:
        queue = self._queue
        batch = [queue.popleft()]
        size = len(batch[0].value)
        while queue and len(batch) < BATCH_RECORDS and size < BATCH_BYTES:
            record = queue.popleft()
            batch.append(record)
            size += len(record.value)
        return batch

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if self._retry and self._in_flight == 0:
                # Everything sent before has settled: the failed batches go first, in order.
                await asyncio.sleep(RETRY_DELAY)
                for _, failed in sorted(self._retry, key=itemgetter(0), reverse=True):
                    self._queue.extendleft(reversed(failed))
                self._retry = []
            while self._queue and self._in_flight < MAX_IN_FLIGHT and not self._retry:
                batch = self._take()
                sequence = next(self._sequence)
                self._in_flight += 1
                try:
                    transport = await self._core.ready()
                    acked = await transport.send(self._topic, batch)
                except Exception as exc:
                    if not self._retry_later(sequence, batch, exc):
                        self._settle(batch, exc)
                    continue
                acked.add_done_callback(partial(self._acked, sequence, batch))
            if self._in_flight == 0:
                if self._retry:
                    continue  # the failed batches go out again, at the top
                self._idle = True
                if self._queue:  # pushed between the drain and `idle`: no wake-up was sent
                    self._idle = False
                    continue
            await wake.wait()
            wake.clear()

    def _acked(self, sequence: int, batch: list[Record], future: asyncio.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is None or not self._retry_later(sequence, batch, error):
            self._settle(batch, error)
        assert self._wake is not None
        self._wake.set()  # what gathered meanwhile goes out now

    def _retry_later(self, sequence: int, batch: list[Record], error: BaseException) -> bool:
        """Keep `batch` to send again if `error` is retriable and the failures have not lasted
        `DELIVERY_TIMEOUT` (True), else leave it to fail (False)."""
        if not getattr(error, "retriable", False):
            return False
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since > DELIVERY_TIMEOUT:
            self._failing_since = None  # later batches get their own time
            return False
        self._in_flight -= 1
        self._retry.append((sequence, batch))
        return True

    def _settle(self, batch: list[Record], error: BaseException | None) -> None:
        self._in_flight -= 1
        if error is None:
            self._failing_since = None
        else:
            with self._cond:
                if self.error is None:
                    self.error = error
            self._core.report(error)
        with self._cond:
            self._unacked -= len(batch)
            self._unacked_bytes -= sum(len(r.value) for r in batch)
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every pushed record is acknowledged; raise the first failed write."""
        if self._core.loop.in_loop():
            return  # cannot wait from a callback; the records are on their way
        if self._queue:
            self._core.loop.call_soon(self._wake_up)  # no lingering: someone waits
        with self._cond:
            if not self._cond.wait_for(lambda: self._unacked == 0, timeout):
                raise StreamportError(
                    f"flush of {self._topic!r} timed out with {self._unacked} records unacknowledged"
                )
            self._raise_error()

    def close(self) -> None:
        task = self._task
        if task is not None:
            self._core.loop.call_soon(task.cancel)


class DirectSender:
    """Kafka: each record goes to librdkafka's queue from the thread that pushes it.

    No hop through the client's loop (a wake-up of the loop thread costs a GIL hand-over from a
    publishing thread that is busy in Python): ``KafkaTransport.produce_now`` queues the record in
    C. librdkafka keeps the order of one partition (the producer is idempotent), and records are
    queued under this sender's lock, in push order. Only failed deliveries call back into
    Python (``delivery.report.only.error``): a report per successful record would take the GIL
    from the publishing thread once per record. ``wait`` is librdkafka's ``flush``: it returns
    once every record the client queued is acknowledged (all topics of the client, a superset).

    Records wait in a backlog, sent from the loop in push order, until the topic is known to
    exist (the first push creates it) and while librdkafka's queue is full (its bounds are the
    transport's); meanwhile later pushes join the backlog so the order holds, and a pushing
    thread other than the loop's waits while the backlog holds `MAX_PENDING` records or
    `MAX_PENDING_BYTES`. A failed record is reported to the client's error hook and raised by
    the next push or wait.
    """

    def __init__(self, core: Core, topic: str, transport: KafkaTransport) -> None:
        self._core = core
        self._topic = topic
        self._transport = transport
        self._cond = threading.Condition()
        # None: produce directly. Else the records waiting for the topic or for queue space.
        self._backlog: deque[Record] | None = deque()
        self._backlog_bytes = 0
        self._drain: asyncio.Task[None] | None = None  # the loop's task sending the backlog
        self._closed = False
        self.error: BaseException | None = None

    def push(self, record: Record) -> None:
        with self._cond:
            self._raise_error()
            if self._backlog is None:
                try:
                    self._transport.produce_now(self._topic, record, self._delivered)
                    return
                except BufferError:  # librdkafka's queue is full: wait in the backlog
                    self._backlog = deque()
                except StreamportError as exc:  # refused at once, e.g. too large
                    self._fail_locked(exc)
                    return
            self._backlog.append(record)
            self._backlog_bytes += len(record.value)
            if self._drain is None and not self._closed:
                self._drain = _PENDING_DRAIN
                self._core.loop.call_soon(self._start_drain)
            if not self._core.loop.in_loop():
                while (
                    self._backlog is not None
                    and (
                        len(self._backlog) >= MAX_PENDING
                        or self._backlog_bytes >= MAX_PENDING_BYTES
                    )
                    and self.error is None
                ):
                    self._cond.wait()

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise StreamportError(f"an earlier write to {self._topic!r} failed: {error}") from error

    def _start_drain(self) -> None:
        if self._closed:
            return
        self._drain = asyncio.get_running_loop().create_task(self._send_backlog())

    async def _send_backlog(self) -> None:
        try:
            await self._transport.ensure(self._topic)
        except Exception as exc:
            with self._cond:
                self._backlog = deque()  # its records failed; the next push tries again
                self._backlog_bytes = 0
                self._drain = None
                self._fail_locked(exc)
            return
        while True:
            with self._cond:
                backlog = self._backlog
                assert backlog is not None
                while backlog:
                    record = backlog[0]
                    try:
                        self._transport.produce_now(self._topic, record, self._delivered)
                    except BufferError:
                        break
                    except StreamportError as exc:
                        self._fail_locked(exc)
                    backlog.popleft()
                    self._backlog_bytes -= len(record.value)
                self._cond.notify_all()
                if not backlog:
                    self._backlog = None
                    self._drain = None
                    return
            await asyncio.sleep(BACKLOG_RETRY)  # deliveries free librdkafka's queue meanwhile

    def _fail_locked(self, error: BaseException) -> None:
        """Record a failure (the caller holds the lock): raised once, reported to the hook."""
        if self.error is None:
            self.error = error
        self._cond.notify_all()
        self._core.loop.call_soon(self._core.report, error)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        """A delivery report: only failed records have one (on the thread that polled)."""
        if error is not None:
            with self._cond:
                self._fail_locked(self._transport.delivery_error(error, self._topic))

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every pushed record is acknowledged; raise the first failed write."""
        if self._core.loop.in_loop():
            return  # cannot wait from a callback; the records are on their way
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._backlog is None or not self._backlog, timeout):
                raise StreamportError(f"flush of {self._topic!r} timed out (topic not ready)")
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        # Blocks in librdkafka (the GIL released); serves failed deliveries' reports.
        if self._transport.flush(left) > 0:
            raise StreamportError(f"flush of {self._topic!r} timed out with records unacknowledged")
        with self._cond:
            self._raise_error()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            task = self._drain
        if isinstance(task, asyncio.Task):
            self._core.loop.call_soon(task.cancel)


# Marks a drain scheduled on the loop but not started yet (so pushes schedule only one).
_PENDING_DRAIN: Any = object()
BACKLOG_RETRY = 0.01  # seconds between tries while librdkafka's queue is full


def make_sender(core: Core, topic: str) -> Sender | DirectSender:
    """The sender for `topic`: direct on Kafka, through the client's loop otherwise."""
    transport = core.transport
    if isinstance(transport, KafkaTransport):
        return DirectSender(core, topic, transport)
    return Sender(core, topic)
