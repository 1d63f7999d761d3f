"""What a client's producers and consumers share: the loop thread, the transport, the error hook.

The transport is started on first use, on the client's own loop thread. ``dispose()`` closes
consumers, flushes producers, closes the transport and joins the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from streamport.client._loop import LoopThread
from streamport.client._transport import Transport

log = logging.getLogger("streamport.client")

ErrorHook = Callable[[BaseException], None]


class Disposable(Protocol):
    def dispose(self) -> None: ...


class Core:
    def __init__(self, transport: Transport, on_error: ErrorHook | None, name: str) -> None:
        self.loop = LoopThread(name)
        self._transport = transport
        self._started = False
        self._start_lock = threading.Lock()
        self.on_error: ErrorHook | None = on_error
        self.error_count = 0
        # Producers first, then consumers: dispose closes consumers before flushing producers.
        self.producers: list[Disposable] = []
        self.consumers: list[Disposable] = []
        self.disposed = False

    @property
    def transport(self) -> Transport:
        return self._transport

    async def ready(self) -> Transport:
        """The started transport (started here, on the loop, the first time)."""
        if not self._started:
            await self._transport.start()
            self._started = True
        return self._transport

    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self.loop.run(self.ready())

    def report(self, exc: BaseException) -> None:
        """Hand an error (a user callback's, a failed write's) to the hook; never swallow it."""
        self.error_count += 1
        hook = self.on_error
        if hook is None:
            log.error("streamport client error: %s", exc, exc_info=exc)
            return
        try:
            hook(exc)
        except Exception as hook_exc:  # the hook itself failed: log both, stop nothing
            log.error("the on_error hook raised %s while handling %s", hook_exc, exc)

    def dispose(self) -> None:
        if self.disposed:
            return
        self.disposed = True
        try:
            for consumer in list(self.consumers):
                consumer.dispose()
            for producer in list(self.producers):
                producer.dispose()
            if self._started:
                self.loop.run(self._transport.aclose())
        finally:
            self.loop.close()
