"""A real gateway (uvicorn, embedded broker) on its own thread and loop, for the synchronous SDK.

The SDK blocks its caller while its own loop thread talks to the gateway, so the gateway cannot
share the test's loop; it runs on a thread owned by the fixture and stopped at teardown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gateway.conftest import run_gateway


@dataclass
class ThreadGateway:
    url: str
    token: str
    tokens: object


@pytest.fixture
def sdk_gateway(tmp_path: Path) -> Iterator[ThreadGateway]:
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    found: list[ThreadGateway] = []
    failure: list[BaseException] = []

    async def main() -> None:
        nonlocal stop, loop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            async with run_gateway(tmp_path / "gw") as gateway:
                found.append(ThreadGateway(gateway.url, gateway.token, gateway.tokens))
                ready.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="test-gateway")
    thread.start()
    assert ready.wait(60), "the gateway did not start"
    assert not failure, failure
    try:
        yield found[0]
    finally:
        assert loop is not None and stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
