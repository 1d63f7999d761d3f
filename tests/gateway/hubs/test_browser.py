"""Headless Chromium: a Quix-style writer page sends simulated mouse moves with SendEventData, a
reader page from the same (other-than-gateway) origin shows them; tokens via accessTokenFactory."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from tests.gateway.conftest import GatewayFactory
from tests.gateway.hubs.support import JS_DIR, node
from tests.services.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MOVES = 8


@contextlib.asynccontextmanager
async def page_origin() -> AsyncIterator[str]:
    """Serves tests/js (the pages and the SignalR browser bundle) on another port: another origin."""
    app = Starlette(routes=[Mount("/", StaticFiles(directory=JS_DIR))])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "page server stopped"
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_mouse_positions_from_writer_page_appear_on_reader_page(
    gateway_factory: GatewayFactory,
) -> None:
    async with page_origin() as origin:
        gateway = await gateway_factory()  # default: with tokens required, any origin may connect
        token = gateway.tokens.create("browser", ["read:mouse", "write:mouse"])
        proc = await asyncio.create_subprocess_exec(
            node(),
            str(JS_DIR / "quix" / "mouse.mjs"),
            origin,
            gateway.url,
            token,
            "mouse",
            str(MOVES),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=JS_DIR,
        )
        async with asyncio.timeout(120):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["writerStatus"].startswith("ready"), result
    assert result["readerStatus"] == "subscribed", result
    expected = [
        json.dumps({"x": 20 * i, "y": 10 * i + 5}, separators=(",", ":"))
        for i in range(1, MOVES + 1)
    ]
    assert result["sent"] == expected
    assert result["events"] == expected
    assert result["packages"] == expected


async def test_page_from_an_origin_not_allowed_cannot_connect(
    gateway_factory: GatewayFactory,
) -> None:
    async with page_origin() as origin:
        gateway = await gateway_factory(cors_origins=["http://elsewhere.example"])
        token = gateway.tokens.create("browser", ["read:mouse", "write:mouse"])
        proc = await asyncio.create_subprocess_exec(
            node(),
            str(JS_DIR / "quix" / "mouse.mjs"),
            origin,
            gateway.url,
            token,
            "mouse",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=JS_DIR,
        )
        async with asyncio.timeout(120):
            out, _ = await proc.communicate()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["readerStatus"].startswith("error"), result
    assert result["events"] == []
