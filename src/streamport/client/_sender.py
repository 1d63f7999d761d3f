"""`Sender`: the ordered, bounded path from a topic producer to the transport.

Any thread pushes encoded records; one task on the client's loop sends them in batches (all that
waited, up to `BATCH_RECORDS`) and waits for each batch's durable acknowledgement before the
next, which keeps the order of every stream. At `MAX_PENDING` unacknowledged records a pushing
thread waits; the loop thread itself (a consumer callback producing) never waits, its overshoot
is bounded by one fetched batch.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from streamport.broker import Record
from streamport.client._core import Core
from streamport.errors import StreamportError

MAX_PENDING = 20_000
BATCH_RECORDS = 5_000


class Sender:
    def __init__(self, core: Core, topic: str) -> None:
        self._core = core
        self._topic = topic
        self._queue: deque[Record] = deque()
        self._unacked = 0
        self._cond = threading.Condition()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def push(self, record: Record) -> None:
        loop = self._core.loop
        with self._cond:
            if not loop.in_loop():
                while self._unacked >= MAX_PENDING and self.error is None:
                    self._cond.wait()
            self._raise_error()
            self._unacked += 1
        loop.call_soon(self._enqueue, record)

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise StreamportError(f"an earlier write to {self._topic!r} failed: {error}") from error

    def _enqueue(self, record: Record) -> None:
        self._queue.append(record)
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._wake is not None
        self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                count = min(len(self._queue), BATCH_RECORDS)
                batch = [self._queue.popleft() for _ in range(count)]
                try:
                    transport = await self._core.ready()
                    await transport.produce(self._topic, batch)
                except Exception as exc:
                    with self._cond:
                        self.error = exc
                    self._core.report(exc)
                finally:
                    with self._cond:
                        self._unacked -= count
                        self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every pushed record is acknowledged; raise the first failed write."""
        if self._core.loop.in_loop():
            return  # cannot wait from a callback; the records are on their way
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
