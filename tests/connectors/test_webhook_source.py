"""The standalone webhook-source connector, writing through a live gateway."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx
import pytest

from streamport.connectors import Runner
from streamport.connectors.webhook import WebhookSource, WebhookSourceConfig
from streamport.model import EventData, StreamProperties, decode
from tests.connectors.conftest import platform
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


async def test_verified_deliveries_are_written_once_and_tampering_refused(
    gateway: Gateway,
) -> None:
    config = WebhookSourceConfig(
        output_topic="gh-events",
        webhook="gh",
        listen_port=0,
        verify="github",
        secret="s",  # type: ignore[arg-type]
        **platform(gateway),
    )
    source = WebhookSource(config)
    runner = Runner(source)
    running = asyncio.create_task(runner.run(timeout=60))
    try:
        async with asyncio.timeout(30):
            while source.port is None:
                await asyncio.sleep(0.01)
        body = b'{"action":"created"}'
        headers = {
            "X-Hub-Signature-256": "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest(),
            "X-GitHub-Event": "star",
            "X-GitHub-Delivery": "d1",
            "content-type": "application/json",
        }
        url = f"http://127.0.0.1:{source.port}/webhooks/gh"
        async with httpx.AsyncClient(timeout=30) as client:
            first = await client.post(url, content=body, headers=headers)
            again = await client.post(url, content=body, headers=headers)
            tampered = await client.post(url, content=body + b" ", headers=headers)
            other = await client.post(url.replace("/gh", "/nope"), content=body, headers=headers)
        assert first.json()["status"] == "written"
        assert again.json()["status"] == "duplicate"
        assert tampered.status_code == 401
        assert other.status_code == 404
    finally:
        runner.stop()
        result = await running
    assert result.records_out == 2
    records = await gateway.read("gh-events", 2)
    messages = [decode(r.value, r.headers) for r in records]
    assert isinstance(messages[0], StreamProperties)
    assert isinstance(messages[1], EventData)
    assert messages[1].id == "star"
    assert sum(m.high for m in await gateway.broker.watermarks("gh-events")) == 2
