"""The Reader hub hands each connection one fetch's pushes at once: complete messages, in order,
joined once per protocol into one queue entry (usually one frame); Long Polling clients that take
one message per poll still get one message per poll."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamport.broker import Record, TopicConfig
from streamport.broker.embedded import EmbeddedBroker
from streamport.gateway.auth import TokenStore
from streamport.gateway.hubs import Hubs
from streamport.gateway.metrics import Metrics
from streamport.gateway.state import GatewayState
from streamport.model import EventData, encode
from streamport.settings import Settings
from streamport.streams.writer import Writer
from tests.gateway.conftest import Gateway, GatewayFactory
from tests.gateway.signalr.rawclient import (
    RawConnection,
    _split_msgpack,
    negotiate,
    raw_connection,
)

pytestmark = pytest.mark.integration

RS = "\x1e"
COUNT = 20


def records(count: int) -> list[Record]:
    return [
        Record(encode(EventData(id="E", timestamp=i, value=str(i))), key=b"s") for i in range(count)
    ]


async def event_frames(
    conn: RawConnection, count: int, progress: list[int] | None = None
) -> list[list[Any]]:
    """Frames (as lists of decoded messages) until `count` EventDataReceived arrived; pings
    are left out. ``progress[0]``, when given, follows how many arrived so far."""
    frames: list[list[Any]] = []
    seen = 0
    while seen < count:
        if progress is not None:
            progress[0] = seen
        frame = await conn.ws.recv()
        if isinstance(frame, str):
            messages = [json.loads(part) for part in frame.split(RS) if part]
            events = [m for m in messages if m.get("target") == "EventDataReceived"]
        else:
            messages = _split_msgpack(frame)
            events = [m for m in messages if m[0] == 1 and m[3] == "EventDataReceived"]
        if events:
            frames.append(events)
            seen += len(events)
    return frames


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    started = await gateway_factory(auth=False)
    await started.broker.create_topic("t", TopicConfig(partitions=1))
    return started


async def test_one_fetch_reaches_each_websocket_reader_as_one_frame_in_order(
    gateway: Gateway,
) -> None:
    async with (
        raw_connection(gateway.url, "/reader/hub") as json1,
        raw_connection(gateway.url, "/reader/hub") as json2,
        raw_connection(gateway.url, "/reader/hub", protocol="messagepack") as packed,
    ):
        for conn in (json1, json2):
            reply = await conn.invoke("SubscribeToEvent", "t", "*", "*")
            assert reply == {"type": 3, "invocationId": "1"}
        await packed.send_msgpack([1, {}, "1", "SubscribeToEvent", ["t", "*", "*"]])
        assert await packed.recv_skip_pings() == [3, {}, "1", 2]
        await gateway.broker.produce("t", records(COUNT))  # one append: one fetch, one batch
        for conn in (json1, json2):
            [frame] = await event_frames(conn, COUNT)
            assert [m["arguments"][0]["value"] for m in frame] == [str(i) for i in range(COUNT)]
        [frame] = await event_frames(packed, COUNT)
        assert [m[4][0]["value"] for m in frame] == [str(i) for i in range(COUNT)]


async def test_long_polling_reader_that_takes_one_message_per_poll_gets_one(
    gateway: Gateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        negotiated = await http.post("/reader/hub/negotiate", params={"negotiateVersion": "1"})
        token = negotiated.json()["connectionToken"]
        hub = f"/reader/hub?id={token}"

        async def poll() -> list[dict[str, Any]]:
            response = await http.get(hub)  # no X-Requested-With: one message per poll
            assert response.status_code == 200
            return [json.loads(part) for part in response.text.split(RS) if part]

        assert await poll() == []  # the first poll starts the transport
        await http.post(hub, content='{"protocol":"json","version":1}' + RS)
        assert await poll() == [{}]
        subscribe = ["t", "*", "*"]
        call = {
            "type": 1,
            "invocationId": "1",
            "target": "SubscribeToEvent",
            "arguments": subscribe,
        }
        await http.post(hub, content=json.dumps(call) + RS)
        assert await poll() == [{"type": 3, "invocationId": "1"}]
        await gateway.broker.produce("t", records(3))
        for i in range(3):
            [message] = await poll()
            assert message["target"] == "EventDataReceived"
            assert message["arguments"][0]["value"] == str(i)
        await http.delete(hub)


@contextlib.asynccontextmanager
async def stalled_reader(gateway: Gateway) -> AsyncIterator[asyncio.StreamReader]:
    """A WebSocket reader that subscribes to events on "t" and then stops reading (small socket
    buffer, no autotuning, a small stream buffer: the server's writes soon block)."""
    negotiated = await negotiate(gateway.url, "/reader/hub", negotiateVersion="1")
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=16384)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /reader/hub?id={negotiated['connectionToken']} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = await reader.readuntil(b"\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 101"), response
        call = '{"type":1,"invocationId":"1","target":"SubscribeToEvent","arguments":["t","*","*"]}'
        for text in ('{"protocol":"json","version":1}', call):
            payload = (text + RS).encode()  # masked with a zero key: the bytes stay as they are
            writer.write(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        seen = b""
        while b'"invocationId":"1"' not in seen:  # subscribed; from now on it reads nothing
            chunk = await reader.read(4096)
            assert chunk, seen
            seen += chunk
        yield reader
    finally:
        writer.close()


async def test_a_stalled_reader_is_closed_and_never_holds_up_the_others(gateway: Gateway) -> None:
    big = "x" * 100_000
    # 30 MB: more than a connection's outgoing queue (8 MiB) plus what the kernel buffers
    count = 300
    async with (
        stalled_reader(gateway) as stalled,
        raw_connection(gateway.url, "/reader/hub") as reader,
    ):
        assert await reader.invoke("SubscribeToEvent", "t", "*", "*") == {
            "type": 3,
            "invocationId": "1",
        }
        # the reader keeps up: it reads while the data is produced, and the producer stays at
        # most 5 MB (half the reader's outgoing queue) ahead of it
        progress = [0]
        reading = asyncio.create_task(event_frames(reader, count, progress))
        for start in range(0, count, 10):
            while start - progress[0] > 50 and not reading.done():
                await asyncio.sleep(0.01)
            batch = [
                Record(encode(EventData(id="E", timestamp=i, value=f"{i} {big}")), key=b"s")
                for i in range(start, start + 10)
            ]
            await gateway.broker.produce("t", batch)
        frames = await reading
        values = [m["arguments"][0]["value"].split()[0] for f in frames for m in f]
        assert values == [str(i) for i in range(count)]
        # the server closed the stalled connection: what is left to read ends in EOF, well
        # short of the 30 MB that were fanned out
        total = 0
        async with asyncio.timeout(30):
            while chunk := await stalled.read(1 << 20):
                total += len(chunk)
        assert total < count * len(big)


async def test_the_fan_out_gathers_while_the_writer_hub_or_the_writer_has_writes_under_way(
    tmp_path: Path,
) -> None:
    # the signal `TopicReader._take` waits on (tests/streams/test_fanout.py shows what it does)
    broker = EmbeddedBroker(tmp_path / "log")
    writer = Writer(broker)
    settings = Settings(data_dir=tmp_path, auth=False, host="127.0.0.1")
    state = GatewayState(settings, broker, TokenStore(tmp_path), writer, Metrics())
    hubs = Hubs(state)
    busy = hubs.fanout.options.busy
    assert busy is not None and not busy("t")
    hubs.writer.queued.count += 1  # a writer hub invocation received, not started yet
    assert busy("t")
    hubs.writer.queued.count -= 1
    assert not busy("t")
    async with broker:
        await writer.ensure_topic("t")
        produce = asyncio.ensure_future(writer.write("t", "s", EventData(id="E", timestamp=1)))
        await asyncio.sleep(0)
        assert busy("t")  # an HTTP or SDK write on its way to the log
        assert not busy("u")  # not to this topic's
        await produce
    assert not busy("t")
