"""The Writer hub runs a connection's invocations in parallel (``max_parallel_invocations``), yet
the writes of one stream reach the log in the order the client sent them, on the embedded broker
and on real Kafka, and every invocation gets its own answer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from streamport.broker import TopicConfig
from streamport.broker.kafka import KafkaBroker
from streamport.gateway.hubs import WRITER_PARALLEL_INVOCATIONS
from streamport.model import EventData, StreamEnd, StreamProperties, decode
from tests.gateway.conftest import Gateway, GatewayFactory, run_gateway
from tests.gateway.signalr.rawclient import RS, RawConnection, raw_connection

pytestmark = pytest.mark.integration

COUNT = 400


def invocation(n: int, target: str, *args: Any) -> str:
    return json.dumps({"type": 1, "invocationId": str(n), "target": target, "arguments": args}) + RS


async def pipelined(conn: RawConnection, frames: list[str]) -> dict[int, dict[str, Any]]:
    """Send every invocation without waiting (a few per frame), then collect all completions."""
    for start in range(0, len(frames), 7):
        await conn.send_text("".join(frames[start : start + 7]))
    out: dict[int, dict[str, Any]] = {}
    while len(out) < len(frames):
        message = await conn.recv_skip_pings(timeout=30)
        assert message["type"] == 3, message
        out[int(message["invocationId"])] = message
    return out


def stream_values(records: list[Any], stream: bytes) -> list[Any]:
    out: list[Any] = []
    for record in records:
        if record.key != stream:
            continue
        message = decode(record.value)
        if isinstance(message, EventData):
            out.append(message.value)
        elif isinstance(message, list):
            out.extend(e.value for e in message)
        elif isinstance(message, StreamProperties):
            out.append(f"properties {message.name}")
        elif isinstance(message, StreamEnd):
            out.append("end")
    return out


async def check_order(gateway: Gateway) -> None:
    topic = f"order-{uuid.uuid4().hex[:8]}"  # new: the first writes also create the topic
    frames = [invocation(0, "UpdateStream", topic, "a", {"name": "A"})]
    expected_a: list[Any] = ["properties A"]
    expected_b: list[Any] = []
    for n in range(1, COUNT + 1):
        event = {"id": "E", "timestamp": n, "value": str(n)}
        if n % 3 == 0:  # a second stream interleaved on the same connection
            frames.append(invocation(n, "SendEventData", topic, "b", [event]))
            expected_b.append(str(n))
        else:
            frames.append(invocation(n, "SendEventData", topic, "a", event))
            expected_a.append(str(n))
    frames.append(invocation(COUNT + 1, "CloseStream", topic, "a"))
    expected_a.append("end")
    async with raw_connection(gateway.url, "/writer/hub") as conn:
        done = await pipelined(conn, frames)
    errors = [m for m in done.values() if "error" in m]
    assert errors == []
    records = await gateway.read(topic, len(frames))
    assert stream_values(records, b"a") == expected_a
    assert stream_values(records, b"b") == expected_b


async def test_writes_of_a_stream_keep_the_send_order_on_the_embedded_broker(
    gateway_factory: GatewayFactory,
) -> None:
    await check_order(await gateway_factory(auth=False))


@pytest.mark.kafka
async def test_writes_of_a_stream_keep_the_send_order_on_kafka(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    async with run_gateway(tmp_path, KafkaBroker(kafka_bootstrap), auth=False) as gateway:
        await check_order(gateway)


async def test_errors_stay_per_invocation_and_the_good_writes_keep_their_order(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(auth=False, max_record_bytes=2000)
    topic = f"errors-{uuid.uuid4().hex[:8]}"
    frames: list[str] = []
    bad: set[int] = set()
    expected: list[Any] = []
    for n in range(120):
        if n % 10 == 3:  # rejected by the broker: larger than max_record_bytes
            event = {"id": "E", "timestamp": n, "value": "x" * 5000}
            bad.add(n)
        elif n % 10 == 7:  # rejected by the parser
            event = {"id": "E", "timestamp": "not a time", "value": str(n)}
            bad.add(n)
        else:
            event = {"id": "E", "timestamp": n, "value": str(n)}
            expected.append(str(n))
        frames.append(invocation(n, "SendEventData", topic, "s", event))
    frames.append(invocation(120, "SendEventData", topic, "", {"id": "E", "timestamp": 1}))
    bad.add(120)
    async with raw_connection(gateway.url, "/writer/hub") as conn:
        done = await pipelined(conn, frames)
    failed = {n for n, m in done.items() if "error" in m}
    assert failed == bad
    assert "2000" in done[3]["error"] and "timestamp" in done[7]["error"].lower()
    assert "stream" in done[120]["error"].lower()
    records = await gateway.read(topic, len(expected))
    assert stream_values(records, b"s") == expected


async def test_the_writer_hub_runs_invocations_in_parallel_and_batches_a_streams_writes(
    gateway_factory: GatewayFactory,
) -> None:
    """One at a time, every SendEventData would be its own produce. In parallel, invocations that
    arrive while a write of their stream is in flight share the next produce."""
    assert WRITER_PARALLEL_INVOCATIONS > 1
    gateway = await gateway_factory(auth=False)
    topic = f"batch-{uuid.uuid4().hex[:8]}"
    await gateway.broker.create_topic(topic, TopicConfig(partitions=1))
    frames = [
        invocation(n, "SendEventData", topic, "s", {"id": "E", "timestamp": n, "value": str(n)})
        for n in range(140)
    ]
    async with raw_connection(gateway.url, "/writer/hub") as conn:
        done = await pipelined(conn, frames)
    assert [m for m in done.values() if "error" in m] == []
    async with gateway.client() as http:
        text = (await http.get("/metrics")).text
    produces = metric(text, "streamport_produce_latency_seconds_count")
    records = metric(text, f'streamport_records_in_total{{topic="{topic}"}}')
    assert records == 140
    assert produces < records


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")
