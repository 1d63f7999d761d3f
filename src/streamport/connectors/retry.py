"""Retries with exponential backoff, and which errors a retry can fix.

Example::

    backoff = Backoff(initial=0.2, maximum=10)
    await retry(lambda: client.connect(), backoff, stop=stopping, on_retry=metrics.retried)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from streamport.errors import Backpressure, StreamportError

log = logging.getLogger("streamport.connectors")

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delays ``initial * 2**n`` capped at `maximum`, with up to 20% jitter (so many connectors
    restarted together do not retry in lockstep)."""

    initial: float = 0.2
    maximum: float = 10.0

    def delay(self, attempt: int) -> float:
        base: float = min(self.maximum, self.initial * 2.0 ** min(attempt, 30))
        return base * (1 - 0.2 * random.random())  # noqa: S311 - jitter, not cryptography


def is_retriable(exc: BaseException) -> bool:
    """Errors a retry can fix: streamport errors marked retriable, and network errors."""
    if isinstance(exc, StreamportError):
        return exc.retriable
    return isinstance(exc, OSError | TimeoutError | ConnectionError)


class Stopped(Exception):
    """Raised by `retry` / `sleep` when the connector is stopping."""


async def sleep(seconds: float, stop: asyncio.Event | None) -> None:
    """Sleep `seconds`, or raise `Stopped` as soon as `stop` is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    if stop.is_set():
        raise Stopped()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    if stop.is_set():
        raise Stopped()


async def retry(
    operation: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    stop: asyncio.Event | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
    attempts: int | None = None,
    what: str = "operation",
) -> T:
    """Run `operation` until it succeeds; retriable errors are retried with backoff
    (`Backpressure` waits its `retry_after`), others raise at once. With `attempts`, the last
    retriable error is raised after that many tries."""
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_retriable(exc):
                raise
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            if on_retry is not None:
                on_retry(exc)
            wait = exc.retry_after if isinstance(exc, Backpressure) else backoff.delay(attempt - 1)
            log.warning("%s failed (%s); retry %d in %.2f s", what, exc, attempt, wait)
            await sleep(wait, stop)
