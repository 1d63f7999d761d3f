"""A real gateway for tests: uvicorn on a free loopback port, in the test's event loop.

The server shares the test's loop, so tests must talk to it with async clients (httpx.AsyncClient,
asyncio subprocesses), never blocking ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from streamport.broker import Broker, ConsumedRecord
from streamport.broker.embedded import EmbeddedBroker
from streamport.gateway.app import create_app
from streamport.gateway.auth import TokenStore
from streamport.gateway.signalr import WebSocketProtocol
from streamport.settings import Settings
from tests.services.ports import free_port


@dataclass
class Gateway:
    url: str
    token: str
    broker: Broker
    tokens: TokenStore
    settings: Settings

    def client(self, token: str | None = "admin", **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client; token "admin" (default) uses the admin token, None sends none."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'admin' else token}"
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30.0, **kwargs)

    async def read(self, topic: str, count: int, timeout: float = 30.0) -> list[ConsumedRecord]:
        """The first `count` records of `topic`, read straight from the broker."""
        out: list[ConsumedRecord] = []
        async with self.broker.consumer([topic], auto_offset_reset="earliest") as consumer:
            async with asyncio.timeout(timeout):
                while len(out) < count:
                    out.extend(await consumer.fetch(max_records=count - len(out), timeout=1.0))
        return out


@contextlib.asynccontextmanager
async def run_gateway(
    data_dir: Path, broker: Broker | None = None, *, port: int | None = None, **overrides: Any
) -> AsyncIterator[Gateway]:
    settings = Settings(data_dir=data_dir, **overrides)
    broker = broker or EmbeddedBroker(data_dir / "log", max_record_bytes=settings.max_record_bytes)
    tokens = TokenStore(data_dir)
    admin = tokens.create("test-admin", ["admin"])
    app = create_app(settings, broker, tokens=tokens)
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_ping_interval=None,
        lifespan="on",
        ws=WebSocketProtocol,  # as `streamport up`
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield Gateway(f"http://127.0.0.1:{port}", admin, broker, tokens, settings)
    finally:
        server.should_exit = True
        await task


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def start(**overrides: Any) -> Gateway:
            nonlocal count
            count += 1
            return await stack.enter_async_context(
                run_gateway(tmp_path / f"gw{count}", **overrides)
            )

        yield start


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()
