"""`App.run()`: subscribe every consumer, wait for SIGTERM/SIGINT (or a token, or a timeout),
then shut down cleanly: stop consumers (committing what they processed), flush producers,
dispose the clients.

Example::

    consumer.on_stream_received = on_stream
    App.run()                                   # until Ctrl-C or SIGTERM
    App.run(cancellation_token=cts.token)       # until cts.cancel()
    App.run(timeout=5.0)                        # bounded, for tests
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from streamport.client._client import live_clients


class CancellationToken:
    def __init__(self, event: threading.Event) -> None:
        self._event = event

    @property
    def is_cancellation_requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


class CancellationTokenSource:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.token = CancellationToken(self._event)

    def cancel(self) -> None:
        self._event.set()

    @property
    def is_cancellation_requested(self) -> bool:
        return self._event.is_set()


class App:
    @staticmethod
    def run(
        cancellation_token: CancellationToken | None = None,
        before_shutdown: Callable[[], None] | None = None,
        subscribe: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Run until SIGTERM/SIGINT, `cancellation_token`, or `timeout` seconds."""
        stop = threading.Event()
        clients = list(live_clients)
        if subscribe:
            for client in clients:
                for consumer in list(client._core.consumers):
                    consumer.subscribe()  # type: ignore[attr-defined]
        previous: dict[int, object] = {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        try:
            step = 0.1
            waited = 0.0
            while not stop.is_set():
                if cancellation_token is not None and cancellation_token.is_cancellation_requested:
                    break
                if timeout is not None and waited >= timeout:
                    break
                stop.wait(step)
                waited += step
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)  # type: ignore[arg-type]
        if before_shutdown is not None:
            before_shutdown()
        for client in clients:
            client.dispose()
