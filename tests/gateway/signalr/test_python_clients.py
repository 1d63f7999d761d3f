"""The Python SignalR clients `pysignalr` (asyncio) and `signalrcore` (threads) against the real server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol
from signalrcore.hub_connection_builder import HubConnectionBuilder  # type: ignore[import-untyped]
from signalrcore.types import HttpTransportType, HubProtocolEncoding  # type: ignore[import-untyped]

from .support import RunningServer, running_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub_server() -> Iterator[RunningServer]:
    # signalrcore's stop() returns only once its reader thread got one more frame: Ping every second
    with running_server(keep_alive_interval=1.0) as server:
        yield server


async def _pysignalr_session(url: str, protocol: Any) -> dict[str, Any]:
    client = SignalRClient(url, protocol=protocol, ping_interval=10**6, retry_count=1)
    opened = asyncio.Event()
    results: dict[str, Any] = {}
    done: dict[str, asyncio.Future[CompletionMessage]] = {}
    loop = asyncio.get_running_loop()
    pushed: asyncio.Future[Any] = loop.create_future()

    async def on_open() -> None:
        opened.set()

    async def on_pushed(args: Any) -> None:
        if not pushed.done():
            pushed.set_result(args)

    async def on_error(message: CompletionMessage) -> None:
        results.setdefault("errors", []).append(message.error)

    client.on_open(on_open)
    client.on_error(on_error)  # pysignalr requires one for Completions with an error
    client.on("Pushed", on_pushed)

    async def add(args: Any) -> int:  # a client result: the server's AskClient waits for it
        return int(args[0] + args[1])

    client.on("Add", add)

    async def call(
        key: str, method: str, args: list[Any]
    ) -> None:  # pysignalr types args too narrowly
        future: asyncio.Future[CompletionMessage] = loop.create_future()
        done[key] = future

        async def on_result(message: Any) -> None:
            future.set_result(message)

        await client.send(method, args, on_result)

    runner = asyncio.create_task(client.run())
    try:
        async with asyncio.timeout(20):
            await opened.wait()
            await call("echo", "Echo", [{"a": [1, 2]}])
            await call("add", "add", [40, 2])
            await call("hub_error", "ThrowHubError", ["nope"])
            await call("unknown", "Missing", [])
            await call("ask", "AskClient", ["Add", 2, 3, 10])
            await client.send("Push", ["Pushed", "hello"])  # type: ignore[list-item]  # fire and forget: no Completion
            results["pushed"] = await pushed
            for key, future in done.items():
                message = await future
                results[key] = (message.result, message.error)
    finally:
        # pysignalr has no stop(): close its socket (else it leaks on cancel), then end run()
        ws = client._transport._ws
        if ws is not None:
            await ws.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
    return results


@pytest.mark.parametrize(
    "protocol", [JSONProtocol(), MessagepackProtocol()], ids=["json", "msgpack"]
)
async def test_pysignalr_websockets(hub_server: RunningServer, protocol: Any) -> None:
    results = await _pysignalr_session(hub_server.url("/hub"), protocol)
    assert results["echo"] == ({"a": [1, 2]}, None)
    assert results["add"] == (42, None)
    assert results["hub_error"] == (
        None,
        "An unexpected error occurred invoking 'ThrowHubError' on the server. HubException: nope",
    )
    assert results["unknown"] == (None, "Unknown hub method 'Missing'")
    assert results["ask"] == (5, None)  # the client's result, through the hub method
    assert results["pushed"] == ["hello"]
    assert len(results["errors"]) == 2


def _signalrcore_session(
    url: str, transport: HttpTransportType, encoding: HubProtocolEncoding
) -> dict[str, Any]:
    connection = (
        HubConnectionBuilder()
        .with_url(url, options={"transport": transport})
        .with_hub_protocol(encoding)
        .build()
    )
    opened = threading.Event()
    pushed = threading.Event()
    results: dict[str, Any] = {}
    finished: dict[str, threading.Event] = {}
    connection.on_open(opened.set)

    def on_pushed(args: Any) -> None:
        results["pushed"] = args
        pushed.set()

    connection.on("Pushed", on_pushed)

    def call(key: str, method: str, args: list[Any]) -> None:
        event = finished[key] = threading.Event()

        def on_result(message: Any) -> None:
            results[key] = (message.result, message.error)
            event.set()

        connection.invoke(method, args, on_result)

    errors: list[Any] = []
    connection.on_error(lambda message: errors.append(message.error))
    connection.start()
    try:
        assert opened.wait(20), "signalrcore did not connect"
        call("echo", "Echo", ["text"])
        call("add", "Add", [40, 2])
        call("push", "Push", ["Pushed", "hi"])
        # signalrcore never answers a client-result invocation (§12): the hub method times out,
        # and signalrcore hands that error Completion to on_error
        connection.invoke("AskClient", ["Nothing", 2, 3, 0.5])
        assert pushed.wait(20), "no push received"
        for key, event in finished.items():
            assert event.wait(20), f"no completion for {key}"
        for _ in range(200):
            if errors:
                break
            threading.Event().wait(0.05)
    finally:
        connection.stop()
    results["errors"] = errors
    return results


@pytest.mark.parametrize(
    ("transport", "encoding"),
    [
        (HttpTransportType.web_sockets, HubProtocolEncoding.text),
        (HttpTransportType.web_sockets, HubProtocolEncoding.binary),
        (HttpTransportType.long_polling, HubProtocolEncoding.text),
        (HttpTransportType.server_sent_events, HubProtocolEncoding.text),
    ],
    ids=["ws-json", "ws-msgpack", "lp-json", "sse-json"],
)
def test_signalrcore(
    hub_server: RunningServer, transport: HttpTransportType, encoding: HubProtocolEncoding
) -> None:
    results = _signalrcore_session(hub_server.url("/hub"), transport, encoding)
    assert results["echo"][0] == "text"
    assert results["add"][0] == 42
    assert results["pushed"] == ["hi"]
    assert results["errors"] == [
        "An unexpected error occurred invoking 'AskClient' on the server. "
        "HubException: the client did not answer in time"
    ]
