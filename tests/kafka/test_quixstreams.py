"""Interoperability with quixstreams 3.x applications, on the test Kafka broker.

quixstreams' `Application.run()` installs signal handlers, so it runs in the test's main thread:
the tests that run one talk to a `streamport up` process (not a gateway in the test's loop).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

with warnings.catch_warnings():
    # quixstreams imports confluent-kafka's schema registry, which imports authlib's httpx
    # integration; authlib deprecates that module at import time. Not ours to fix. authlib
    # installs an "always" filter for its warnings when imported, so ours goes in after it.
    importlib.import_module("authlib.deprecate")
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from quixstreams import Application

from tests.cli.conftest import Server
from tests.gateway.conftest import Gateway
from tests.kafka.support import HubClient, unique

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

TS = 1_700_000_000_000_000_000


def application(bootstrap: str, tmp_path: Path) -> Application:
    return Application(
        broker_address=bootstrap,
        consumer_group=unique("quix"),
        auto_offset_reset="earliest",
        state_dir=str(tmp_path / "quix-state"),
        loglevel="WARNING",
    )


async def write_through_hub(url: str, token: str, topic: str) -> str:
    async with HubClient(url + "/writer/hub", token) as writer:
        created = await writer.invoke("CreateStream", topic, {"name": "hub stream"})
        stream_id: str = created["streamId"]
        await writer.invoke(
            "SendParameterData",
            topic,
            stream_id,
            {
                "timestamps": [TS + 10, TS + 20],
                "numericValues": {"speed": [10.5, 20.5]},
                "stringValues": {"gear": ["5", "6"]},
                "tagValues": {"driver": ["C", "D"]},
            },
        )
        await writer.invoke(
            "SendEventData",
            topic,
            stream_id,
            [{"id": "lap", "timestamp": TS + 30, "value": "2", "tags": {"sector": "1"}}],
        )
        await writer.invoke("CloseStream", topic, stream_id)
    return stream_id


def test_quix_deserializer_reads_what_streamport_writes(
    kafka_server: Server, kafka_bootstrap: str, tmp_path: Path
) -> None:
    assert kafka_server.token is not None
    token = kafka_server.token
    topic = unique("interop")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=kafka_server.url + "/writer", headers=headers) as http:
        created = http.post(f"/topics/{topic}/streams", json={"name": "http stream"})
        assert created.status_code == 200, created.text
        http_stream = created.json()["streamId"]
        base = f"/topics/{topic}/streams/{http_stream}"
        sent = http.post(
            base + "/parameters/data",
            json={
                "timestamps": [TS, TS + 1000, TS + 2000],
                "numericValues": {"speed": [1.5, 2.5, 3.5]},
                "stringValues": {"gear": ["1", "2", "3"]},
                "tagValues": {"driver": ["A", "A", "B"]},
            },
        )
        assert sent.status_code == 200, sent.text
        sent = http.post(
            base + "/events/data",
            json=[
                {"id": "pit", "timestamp": TS + 5, "value": "in", "tags": {"lap": "3"}},
                {"id": "pit", "timestamp": TS + 6, "value": "out", "tags": {"lap": "3"}},
            ],
        )
        assert sent.status_code == 200, sent.text
    hub_stream = asyncio.run(write_through_hub(kafka_server.url, token, topic))

    app = application(kafka_bootstrap, tmp_path)
    app.dataframe(app.topic(topic, value_deserializer="quix"))
    # StreamProperties and StreamEnd are ignored by the deserializer: 5 + 3 rows of data
    rows = app.run(count=8, timeout=30, metadata=True)

    def row(key: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"_key": key.encode(), **value}

    got = [{k: v for k, v in r.items() if k == "_key" or not k.startswith("_")} for r in rows]
    assert got == [
        row(http_stream, {"speed": 1.5, "gear": "1", "Tags": {"driver": "A"}, "Timestamp": TS}),
        row(
            http_stream,
            {"speed": 2.5, "gear": "2", "Tags": {"driver": "A"}, "Timestamp": TS + 1000},
        ),
        row(
            http_stream,
            {"speed": 3.5, "gear": "3", "Tags": {"driver": "B"}, "Timestamp": TS + 2000},
        ),
        row(http_stream, {"Timestamp": TS + 5, "Id": "pit", "Value": "in", "Tags": {"lap": "3"}}),
        row(http_stream, {"Timestamp": TS + 6, "Id": "pit", "Value": "out", "Tags": {"lap": "3"}}),
        row(
            hub_stream, {"speed": 10.5, "gear": "5", "Tags": {"driver": "C"}, "Timestamp": TS + 10}
        ),
        row(
            hub_stream, {"speed": 20.5, "gear": "6", "Tags": {"driver": "D"}, "Timestamp": TS + 20}
        ),
        row(hub_stream, {"Timestamp": TS + 30, "Id": "lap", "Value": "2", "Tags": {"sector": "1"}}),
    ]


Serializer = Literal["quix_timeseries", "quix_events", "json"]


def produce_with_quixstreams(
    bootstrap: str, tmp_path: Path, topic: str, serializer: Serializer, items: list[tuple[str, Any]]
) -> None:
    """Produce `(key, value)` items the way a quixstreams application does (blocking)."""
    app = application(bootstrap, tmp_path)
    out = app.topic(topic, key_serializer="str", value_serializer=serializer)
    with app.get_producer() as producer:
        for key, value in items:
            message = out.serialize(key=key, value=value)
            producer.produce(
                topic=out.name, key=message.key, value=message.value, headers=message.headers
            )


async def test_quix_serializers_reach_reader_hub(
    kafka_gateway: Gateway, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = unique("from-quix")
    await kafka_gateway.broker.create_topic(topic)
    async with HubClient(kafka_gateway.url + "/reader/hub", kafka_gateway.token) as reader:
        await reader.invoke("SubscribeToParameter", topic, "*", "*")
        await reader.invoke("SubscribeToEvent", topic, "*", "*")
        await asyncio.to_thread(
            produce_with_quixstreams,
            kafka_bootstrap,
            tmp_path,
            topic,
            "quix_timeseries",
            [
                ("car-1", {"Timestamp": TS, "speed": 1.25, "gear": "2", "Tags": {"driver": "A"}}),
                ("car-1", {"Timestamp": TS + 7, "speed": 2.5, "Tags": {"driver": "B"}}),
            ],
        )
        await asyncio.to_thread(
            produce_with_quixstreams,
            kafka_bootstrap,
            tmp_path,
            topic,
            "quix_events",
            [("car-1", {"Timestamp": TS + 9, "Id": "pit", "Value": "in", "Tags": {"lap": "4"}})],
        )
        await reader.wait_for(
            lambda got: (
                len(got["ParameterDataReceived"]) >= 2 and len(got["EventDataReceived"]) >= 1
            )
        )
    first, second = (args[0] for args in reader.received["ParameterDataReceived"])
    assert (first["topicName"], first["streamId"]) == (topic, "car-1")
    assert first["timestamps"] == [TS]
    assert first["numericValues"] == {"speed": [1.25]}
    assert first["stringValues"] == {"gear": ["2"]}
    assert first["tagValues"] == {"driver": ["A"]}
    assert second["timestamps"] == [TS + 7]
    assert second["numericValues"] == {"speed": [2.5]} and second["tagValues"] == {"driver": ["B"]}
    [event] = [args[0] for args in reader.received["EventDataReceived"]]
    assert (event["streamId"], event["id"], event["value"]) == ("car-1", "pit", "in")
    assert event["timestamp"] == TS + 9 and event["tags"] == {"lap": "4"}


async def test_quix_json_reaches_package_subscribers(
    kafka_gateway: Gateway, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = unique("json")
    await kafka_gateway.broker.create_topic(topic)
    values = [{"lap": 1, "driver": "A", "time": 81.25}, {"lap": 2, "driver": "A", "time": 80.5}]
    async with HubClient(kafka_gateway.url + "/reader/hub", kafka_gateway.token) as reader:
        await reader.invoke("SubscribeToPackages", topic)
        await asyncio.to_thread(
            produce_with_quixstreams,
            kafka_bootstrap,
            tmp_path,
            topic,
            "json",
            [("car-9", value) for value in values],
        )
        await reader.wait_for(lambda got: len(got["PackageReceived"]) >= 2)
    packages = [args[0] for args in reader.received["PackageReceived"]]
    assert [json.loads(p["value"]) for p in packages] == values
    assert [p["type"] for p in packages] == ["System.Byte[]"] * 2
    assert [p["streamId"] for p in packages] == ["car-9"] * 2
