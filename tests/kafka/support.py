"""Helpers for the Kafka end-to-end tests: unique topics, reading a topic with confluent-kafka,
and a Reader/Writer hub client on pysignalr."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError
from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage

from streamport.model import Message, decode

# What the Reader hub pushes; the client records every one of them.
PUSH_TARGETS = (
    "ParameterDataReceived",
    "EventDataReceived",
    "PackageReceived",
    "ActiveStreamsChanged",
    "ParameterDefinitionsUpdated",
    "EventDefinitionsUpdated",
    "TopicMetricsUpdated",
    "StreamsChanged",
)


def unique(prefix: str) -> str:
    """A topic (or group) name no other test uses on the shared broker."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """The first `count` records of `topic` (confluent-kafka Messages), read without a group.

    Blocking: call it from a thread in async tests."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("check"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )
    out: list[Any] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for message in consumer.consume(count - len(out), 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"reading {topic}: {error}")
                out.append(message)
    finally:
        consumer.close()
    return out


def decoded(message: Any) -> Message:
    """A confluent-kafka message decoded as a Quix stream message."""
    headers = tuple((name, value or b"") for name, value in (message.headers() or []))
    return decode(message.value(), headers)


class HubClient:
    """A pysignalr connection to a hub that records every push and awaits each invocation.

    Example::

        async with HubClient(url + "/reader/hub", token) as hub:
            await hub.invoke("SubscribeToParameter", "cars", "*", "speed")
            await hub.wait_for(lambda got: len(got["ParameterDataReceived"]) >= 1)
    """

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        # ping_interval: no WebSocket pings (the gateway relies on SignalR pings, as in production)
        self._client = SignalRClient(
            url,
            # pysignalr sends the factory's token only after negotiating: give it as a header too
            headers={"Authorization": f"Bearer {token}"} if token else None,
            access_token_factory=(lambda: token) if token else None,
            ping_interval=10**6,
            retry_count=1,
        )
        self.received: defaultdict[str, list[Any]] = defaultdict(list)
        self.errors: list[str | None] = []
        self._opened = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        for target in PUSH_TARGETS:
            self._client.on(target, self._recorder(target))

        async def on_open() -> None:
            self._opened.set()

        async def on_error(message: CompletionMessage) -> None:
            self.errors.append(message.error)

        self._client.on_open(on_open)
        self._client.on_error(on_error)

    def _recorder(self, target: str) -> Callable[[Any], Any]:
        async def record(args: Any) -> None:
            self.received[target].append(args)

        return record

    async def __aenter__(self) -> HubClient:
        self._runner = asyncio.create_task(self._client.run())
        async with asyncio.timeout(20):
            opened = asyncio.create_task(self._opened.wait())
            done, _ = await asyncio.wait(
                {opened, self._runner}, return_when=asyncio.FIRST_COMPLETED
            )
            if opened not in done:
                opened.cancel()
                self._runner.result()
                raise AssertionError(f"the hub client stopped before it connected to {self.url}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # pysignalr has no stop(): close its socket, then end run()
        ws = self._client._transport._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner

    async def invoke(self, method: str, *args: Any, timeout: float = 30.0) -> Any:
        """Call a hub method and return its result; a hub error fails the test."""
        future: asyncio.Future[CompletionMessage] = asyncio.get_running_loop().create_future()

        async def on_result(message: Any) -> None:
            if not future.done():
                future.set_result(message)

        await self._client.send(method, list(args), on_result)
        async with asyncio.timeout(timeout):
            message = await future
        assert message.error is None, f"{method}{args} failed: {message.error}"
        return message.result

    async def wait_for(
        self, condition: Callable[[defaultdict[str, list[Any]]], bool], timeout: float = 30.0
    ) -> None:
        """Wait until `condition(received)` holds; fail with what arrived if it never does."""
        try:
            async with asyncio.timeout(timeout):
                while not condition(self.received):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            got = {target: len(items) for target, items in self.received.items()}
            raise AssertionError(f"condition not met within {timeout}s; received {got}") from None


@contextlib.asynccontextmanager
async def hub(url: str, token: str | None) -> AsyncIterator[HubClient]:
    async with HubClient(url, token) as client:
        yield client
