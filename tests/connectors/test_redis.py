"""Redis destination end to end: a live gateway -> connector -> Redis (streams and keys)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from streamport.broker import Record
from streamport.connectors.redis import RedisDestination, RedisDestinationConfig
from streamport.connectors.runtime import Runner
from tests.connectors.conftest import platform
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


def server(gw: Gateway) -> dict[str, Any]:
    return dict(platform(gw))


async def stream(client: aioredis.Redis, name: str) -> list[dict[bytes, bytes]]:
    """The entries' fields of stream `name`."""
    entries: Any = await client.xrange(name)
    return [fields for _, fields in entries]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_stream_mode_appends_each_record_with_its_origin(
    gateway: Gateway, redis_url: str
) -> None:
    name = unique("stream")
    async with gateway.client() as http:
        response = await http.post(
            "/writer/topics/clicks/streams/user-7/events/data",
            json=[{"id": "click", "timestamp": 5, "value": "button-a"}],
        )
        assert response.status_code == 200, response.text
    await gateway.broker.produce("clicks", [Record(b"plain", key=b"k2")])
    config = RedisDestinationConfig(
        input_topic="clicks",
        redis_url=SecretStr(redis_url),
        key=name + ":{topic}",
        payload="json",
        **server(gateway),
    )
    high = (await gateway.broker.watermarks("clicks"))[0].high
    result = await Runner(RedisDestination(config)).run(timeout=60, count=high)
    assert result.records_out == high
    client = aioredis.Redis.from_url(redis_url)
    try:
        fields = await stream(client, f"{name}:clicks")
    finally:
        await client.aclose()
    assert len(fields) == high
    assert [f[b"offset"] for f in fields] == [str(n).encode() for n in range(high)]
    event = next(f for f in fields if b'"id":"click"' in f[b"value"])
    assert event[b"key"] == b"user-7" and event[b"topic"] == b"clicks"
    assert fields[-1][b"value"] == b'"plain"' and fields[-1][b"key"] == b"k2"


async def test_key_mode_keeps_the_last_value_per_key_with_a_ttl(
    gateway: Gateway, redis_url: str
) -> None:
    prefix = unique("car")
    await gateway.broker.create_topic("positions")
    await gateway.broker.produce(
        "positions",
        [
            Record(b'{"x":1}', key=b"c1"),
            Record(b'{"x":2}', key=b"c2"),
            Record(b'{"x":3}', key=b"c1"),
        ],
    )
    config = RedisDestinationConfig(
        input_topic="positions",
        redis_url=SecretStr(redis_url),
        mode="key",
        key=prefix + ":{key}",
        ttl=600,
        **server(gateway),
    )
    result = await Runner(RedisDestination(config)).run(timeout=60, count=3)
    assert result.records_out == 3
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.get(f"{prefix}:c1") == b'{"x":3}'
        assert await client.get(f"{prefix}:c2") == b'{"x":2}'
        assert 0 < await client.ttl(f"{prefix}:c1") <= 600
    finally:
        await client.aclose()


async def test_a_key_of_the_wrong_type_dead_letters_only_that_record(
    gateway: Gateway, redis_url: str
) -> None:
    prefix = unique("mixed")
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set(f"{prefix}:bad", b"a string, not a stream")
        await gateway.broker.create_topic("mixed")
        await gateway.broker.produce(
            "mixed",
            [Record(b"1", key=b"good"), Record(b"2", key=b"bad"), Record(b"3", key=b"good")],
        )
        config = RedisDestinationConfig(
            input_topic="mixed",
            redis_url=SecretStr(redis_url),
            key=prefix + ":{key}",
            **server(gateway),
        )
        result = await Runner(RedisDestination(config)).run(timeout=60, count=3)
        assert result.dead_letters == 1
        dead = await gateway.read("mixed-dead-letter", 1)
        assert dead[0].value == b"2"
        assert b"WRONGTYPE" in dict(dead[0].headers)["x-error"]
        values = [e[b"value"] for e in await stream(client, f"{prefix}:good")]
        assert b"1" in values and b"3" in values
    finally:
        await client.aclose()
