"""MQTT source and destination end to end: Mosquitto <-> connector <-> a live gateway."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiomqtt
import pytest

from streamport.broker import Record
from streamport.connectors.base import ConnectorState
from streamport.connectors.mqtt import (
    MqttDestination,
    MqttDestinationConfig,
    MqttSource,
    MqttSourceConfig,
)
from streamport.connectors.runtime import Runner, RunResult
from streamport.model import EventData, encode
from tests.connectors.conftest import platform
from tests.gateway.conftest import Gateway
from tests.services.mosquitto import MosquittoService

pytestmark = pytest.mark.integration


def server(gw: Gateway) -> dict[str, Any]:
    """The settings that point a connector at the gateway (typed loosely for the configs)."""
    return dict(platform(gw))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def wait_running(
    connector: MqttSource | MqttDestination, task: asyncio.Task[RunResult]
) -> None:
    async with asyncio.timeout(30):
        while connector.state is not ConnectorState.RUNNING:
            if task.done():
                task.result()
                raise AssertionError("the connector stopped before it ran")
            await asyncio.sleep(0.02)


async def test_source_subscribes_with_wildcards_at_qos1(
    gateway: Gateway, mosquitto: MosquittoService
) -> None:
    root = unique("plant")
    config = MqttSourceConfig(
        output_topic="mqtt-in",
        port=mosquitto.port,
        topics=[f"{root}/+/temperature", f"{root}/alarms/#"],
        client_id=unique("src"),
        **server(gateway),
    )
    source = MqttSource(config)
    runner = Runner(source)
    expected = [
        (f"{root}/line1/temperature", b"21.5"),
        (f"{root}/alarms/line2/pressure", b'{"level":"high"}'),
        (f"{root}/line2/temperature", b"22.0"),
    ]
    task = asyncio.create_task(runner.run(timeout=60, count=len(expected)))
    await wait_running(source, task)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        # Not matched by the filters: never written.
        await client.publish(f"{root}/line1/humidity", b"40", qos=1)
        await client.publish(f"{root}/line1/temperature/raw", b"x", qos=1)
        for topic, payload in expected:
            await client.publish(topic, payload, qos=1)
    result = await task
    assert result.records_out == len(expected)
    records = await gateway.read("mqtt-in", len(expected))
    assert [(r.key, r.value) for r in records] == [(t.encode(), p) for t, p in expected]
    headers = dict(records[0].headers)
    assert headers["mqtt_topic"] == expected[0][0].encode()
    assert headers["mqtt_qos"] == b"1"
    assert source.acked == len(expected)
    # Nothing else reached the topic.
    high = (await gateway.broker.watermarks("mqtt-in"))[0].high
    assert high == len(expected)


async def test_source_resumes_its_session_and_gets_messages_sent_while_it_was_down(
    gateway: Gateway, mosquitto: MosquittoService
) -> None:
    topic = unique("resume")
    client_id = unique("src")

    def config() -> MqttSourceConfig:
        return MqttSourceConfig(
            output_topic="mqtt-resume",
            port=mosquitto.port,
            topics=[f"{topic}/#"],
            client_id=client_id,
            **server(gateway),
        )

    first = MqttSource(config())
    task = asyncio.create_task(Runner(first).run(timeout=60, count=1))
    await wait_running(first, task)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.publish(f"{topic}/a", b"1", qos=1)
    assert (await task).records_out == 1

    # The source is stopped: the broker keeps QoS 1 messages for its persistent session.
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        for n in (2, 3, 4):
            await client.publish(f"{topic}/a", str(n).encode(), qos=1)

    second = MqttSource(config())
    result = await Runner(second).run(timeout=60, count=3)
    assert result.records_out == 3
    records = await gateway.read("mqtt-resume", 4)
    assert [r.value for r in records] == [b"1", b"2", b"3", b"4"]


async def test_destination_publishes_each_record_at_qos1(
    gateway: Gateway, mosquitto: MosquittoService
) -> None:
    root = unique("out")
    await gateway.broker.create_topic("to-mqtt")
    event = encode(EventData(id="alarm", timestamp=1_000, value="hot"))
    await gateway.broker.produce(
        "to-mqtt",
        [
            Record(b"one", key=b"car-1"),
            Record(b"two", key=b"car-2"),
            Record(event, key=b"car-1"),
        ],
    )
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe(f"{root}/#", qos=1)
        config = MqttDestinationConfig(
            input_topic="to-mqtt",
            port=mosquitto.port,
            topic=root + "/{topic}/{key}",
            payload="json",
            **server(gateway),
        )
        result = await Runner(MqttDestination(config)).run(timeout=60, count=3)
        assert result.records_out == 3
        got: list[tuple[str, bytes]] = []
        async with asyncio.timeout(30):
            async for message in subscriber.messages:
                assert isinstance(message.payload, bytes)
                got.append((message.topic.value, message.payload))
                if len(got) == 3:
                    break
    assert got[0] == (f"{root}/to-mqtt/car-1", b'"one"')
    assert got[1] == (f"{root}/to-mqtt/car-2", b'"two"')
    assert got[2][0] == f"{root}/to-mqtt/car-1"
    assert b'"id":"alarm"' in got[2][1] and b'"streamId":"car-1"' in got[2][1]


async def test_destination_dead_letters_a_record_whose_topic_has_a_wildcard(
    gateway: Gateway, mosquitto: MosquittoService
) -> None:
    await gateway.broker.create_topic("to-mqtt-bad")
    await gateway.broker.produce(
        "to-mqtt-bad",
        [Record(b"ok", key=b"a"), Record(b"bad", key=b"x/#"), Record(b"ok2", key=b"b")],
    )
    config = MqttDestinationConfig(
        input_topic="to-mqtt-bad",
        port=mosquitto.port,
        topic=unique("t") + "/{key}",
        **server(gateway),
    )
    result = await Runner(MqttDestination(config)).run(timeout=60, count=3)
    assert result.dead_letters == 1
    dead = await gateway.read("to-mqtt-bad-dead-letter", 1)
    assert dead[0].value == b"bad"
