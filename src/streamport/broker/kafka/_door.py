"""The one door through which the Kafka backend makes librdkafka's blocking calls.

Admin requests, metadata look-ups and offset queries block their thread until Kafka answers, so
they run on a small thread pool owned by the broker, never on the event loop. Each call's Kafka
errors are translated into streamport's on the way out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from streamport.broker.kafka._errors import translated
from streamport.errors import BrokerClosed

T = TypeVar("T")


class Door:
    """A bounded pool of threads for blocking librdkafka calls; ``close()`` waits for them."""

    def __init__(self, name: str, threads: int = 4) -> None:
        # The executor's work queue is unbounded, but every call is awaited by the coroutine that
        # submitted it, so at most one item per waiting coroutine is ever queued.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._closed = False

    async def call(self, fn: Callable[[], T], *, topic: str | None = None) -> T:
        if self._closed:
            raise BrokerClosed("the Kafka broker is closed")

        def run() -> T:
            with translated(topic=topic):
                return fn()

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
