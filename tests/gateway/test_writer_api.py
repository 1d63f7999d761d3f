"""The Writer HTTP API as Quix clients use it, run with real curl against a live server; every
write is read back from the broker and decoded."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from streamport.model import (
    EventData,
    EventDefinitions,
    ParameterDefinitions,
    StreamEnd,
    StreamEndType,
    StreamProperties,
    TimeseriesData,
    decode,
)
from tests.gateway.conftest import Gateway, GatewayFactory

pytestmark = pytest.mark.integration


async def curl(
    gateway: Gateway,
    method: str,
    path: str,
    body: str | None = None,
    *,
    token: str | None = "admin",
    content_type: str = "application/json",
) -> tuple[int, str]:
    """Run curl like the Quix docs do; returns (status, body)."""
    args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, gateway.url + path]
    if token is not None:
        args += ["-H", f"Authorization: bearer {gateway.token if token == 'admin' else token}"]
    if content_type:
        args += ["-H", f"Content-Type: {content_type}"]
    if body is not None:
        args += ["-d", body]
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    text, _, status = out.decode().rpartition("\n")
    return int(status), text


async def test_quix_curl_session(gateway: Gateway) -> None:
    status, text = await curl(gateway, "POST", "/writer/topics/cars/streams", "{}")
    assert status == 200, text
    stream_id = msgspec.json.decode(text)["streamId"]

    details = (
        '{"name": "Hello World Python stream", "location": "simulations/trials", '
        '"metadata": {"rain": "light"}, "parents": [], "timeOfRecording": "2021-02-06T00:15:15Z"}'
    )
    status, _ = await curl(gateway, "PUT", f"/writer/topics/cars/streams/{stream_id}", details)
    assert status == 200

    parameters = (
        '{"timestamps": [1591733989000000000, 1591733990000000000, 1591733991000000000],'
        ' "numericValues": {"SomeParameter1": [10.01, 202.02, 303.03]},'
        ' "stringValues": {"SomeParameter2": ["Hello", "World", "!"]},'
        ' "binaryValues": {"SomeParameter3": ["aGVsbG8=", "d29ybGQ=", "IQ=="]},'
        ' "tagValues": {"SomeTag": ["a", null, "c"]}}'
    )
    path = f"/writer/topics/cars/streams/{stream_id}"
    assert (await curl(gateway, "POST", path + "/parameters/data", parameters))[0] == 200
    pascal = '{"Epoch": 1000, "Timestamps": [1, 2], "NumericValues": {"speed": [1.5, 2.5]}}'
    assert (await curl(gateway, "POST", path + "/parameters/data", pascal))[0] == 200

    events = '[{"id": "Alert", "timestamp": 1618133869000000000, "value": "Help", "tags": {"capacity": "over"}}]'
    assert (await curl(gateway, "POST", path + "/events/data", events))[0] == 200
    single = '{"Id": "Lap", "Timestamp": 5, "Value": "1"}'
    assert (await curl(gateway, "POST", path + "/events/data", single))[0] == 200

    definitions = (
        '[{"id": "SomeParameter1", "name": "Speed", "minimumValue": 0, "maximumValue": 400,'
        ' "unit": "km/h", "location": "/chassis/engine",'
        ' "customProperties": "{\\"OptimalMinimum\\": 30.0}"}]'
    )
    assert (await curl(gateway, "PUT", path + "/parameters", definitions))[0] == 200
    event_defs = '[{"Id": "Alert", "Name": "Alert", "Level": "Critical", "Location": "/drive/lap"}]'
    assert (await curl(gateway, "PUT", path + "/events", event_defs))[0] == 200
    assert (await curl(gateway, "POST", path + "/close", ""))[0] == 200

    records = await gateway.read("cars", 9)
    assert {r.key for r in records} == {stream_id.encode()}
    messages = [decode(r.value, r.headers) for r in records]
    assert messages[0] == StreamProperties()
    assert messages[1] == StreamProperties(
        name="Hello World Python stream",
        location="simulations/trials",
        metadata={"rain": "light"},
        parents=[],
        time_of_recording=datetime(2021, 2, 6, 0, 15, 15, tzinfo=UTC),
    )
    data = messages[2]
    assert isinstance(data, TimeseriesData)
    assert data.timestamps == [1591733989000000000, 1591733990000000000, 1591733991000000000]
    assert data.numeric_values == {"SomeParameter1": [10.01, 202.02, 303.03]}
    assert data.string_values == {"SomeParameter2": ["Hello", "World", "!"]}
    assert data.binary_values == {"SomeParameter3": [b"hello", b"world", b"!"]}
    assert data.tag_values == {"SomeTag": ["a", None, "c"]}
    with_epoch = messages[3]
    assert isinstance(with_epoch, TimeseriesData)
    assert with_epoch.timestamps == [1001, 1002]  # epoch added, written as absolute times
    assert with_epoch.epoch == 0
    assert messages[4] == EventData(
        id="Alert", timestamp=1618133869000000000, value="Help", tags={"capacity": "over"}
    )
    assert messages[5] == EventData(id="Lap", timestamp=5, value="1", tags={})
    assert isinstance(messages[6], ParameterDefinitions)
    assert isinstance(messages[7], EventDefinitions)
    assert messages[8] == StreamEnd(stream_end_type=StreamEndType.CLOSED)
    # The legacy envelope, byte for byte what Kafka consumers of Quix topics expect.
    assert records[2].value.startswith(b'{"C":"JT","K":"ParameterData","V":{')


async def test_events_array_of_two_is_one_message(gateway: Gateway) -> None:
    body = '[{"id": "a", "timestamp": 1, "value": "x"}, {"id": "b", "timestamp": 2, "value": "y"}]'
    assert (await curl(gateway, "POST", "/writer/topics/ev/streams/s1/events/data", body))[0] == 200
    [record] = await gateway.read("ev", 1)
    assert record.value.startswith(b'{"C":"JT","K":"EventData[]"')
    events = decode(record.value)
    assert isinstance(events, list) and [e.id for e in events] == ["a", "b"]


async def test_unknown_stream_is_created_implicitly(gateway: Gateway) -> None:
    body = '{"timestamps": [1], "numericValues": {"v": [1]}}'
    path = "/writer/topics/implicit/streams/hello-world/parameters/data"
    assert (await curl(gateway, "POST", path, body))[0] == 200
    [record] = await gateway.read("implicit", 1)
    assert record.key == b"hello-world"


async def test_plain_messages(gateway: Gateway) -> None:
    async with gateway.client() as http:
        response = await http.post(
            "/writer/topics/plain/messages",
            json=[
                {"key": "k", "value": {"temperature": 21.5}, "headers": {"h": "1"}, "timestamp": 7}
            ],
        )
    assert response.status_code == 200, response.text
    [record] = await gateway.read("plain", 1)
    assert (record.key, record.value, record.headers, record.timestamp_ms) == (
        b"k",
        b'{"temperature":21.5}',
        (("h", b"1"),),
        7,
    )


def _error(text: str) -> dict[str, Any]:
    error: dict[str, Any] = msgspec.json.decode(text)["error"]
    return error


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "parameters/data",
            '{"timestamps": [1, 2], "numericValues": {"speed": [1]}}',
            "numericValues.speed",
        ),
        ("parameters/data", '{"timestamps": [1, 2.5]}', "timestamps[1]"),
        (
            "parameters/data",
            '{"timestamps": [1], "binaryValues": {"b": ["%%%"]}}',
            "binaryValues.b[0]",
        ),
        ("parameters/data", '{"timestamps": "soon"}', "timestamps"),
        (
            "parameters/data",
            '{"timestamps": [1], "numericValues": {"a/b": [1]}}',
            "numericValues.a/b",
        ),
        ("parameters/data", "{not json", "body"),
        ("events/data", '[{"id": "x", "timestamp": "now"}]', "[0].timestamp"),
        ("events/data", '[{"timestamp": 1}]', "[0].id"),
        ("events/data", '{"id": "a\\\\b", "timestamp": 1}', "id"),
    ],
)
async def test_bad_bodies_name_the_field(
    gateway: Gateway, path: str, body: str, field: str
) -> None:
    status, text = await curl(gateway, "POST", f"/writer/topics/bad/streams/s/{path}", body)
    assert status == 400, text
    assert _error(text)["field"] == field


async def test_stream_id_with_backslash_is_refused(gateway: Gateway) -> None:
    status, text = await curl(gateway, "PUT", "/writer/topics/bad/streams/a%5Cb", "{}")
    assert status == 400
    assert _error(text)["field"] == "streamId"


async def test_content_type_method_and_size(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(max_body_bytes=1000)
    path = "/writer/topics/t/streams/s/parameters/data"
    status, text = await curl(gateway, "POST", path, "{}", content_type="text/plain")
    assert status == 415 and _error(text)["code"] == "unsupported_media_type"
    status, _ = await curl(
        gateway, "POST", path, "{}", content_type="application/json; charset=utf-8"
    )
    assert status == 200
    status, text = await curl(gateway, "GET", path)
    assert status == 405 and _error(text)["code"] == "method_not_allowed"
    big = '{"timestamps": [' + ",".join(["1"] * 600) + "]}"
    status, text = await curl(gateway, "POST", path, big)
    assert status == 413 and _error(text)["code"] == "body_too_large"


async def test_auto_create_off_gives_404(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(auto_create_topics=False)
    status, text = await curl(gateway, "POST", "/writer/topics/absent/streams", "{}")
    assert status == 404 and _error(text)["code"] == "unknown_topic"


async def test_binary_values_round_trip_through_base64(gateway: Gateway) -> None:
    raw = bytes(range(256))
    body = msgspec.json.encode(
        {"timestamps": [1], "binaryValues": {"blob": [base64.b64encode(raw).decode()]}}
    ).decode()
    assert (await curl(gateway, "POST", "/writer/topics/bin/streams/s/parameters/data", body))[
        0
    ] == 200
    [record] = await gateway.read("bin", 1)
    data = decode(record.value)
    assert isinstance(data, TimeseriesData) and data.binary_values == {"blob": [raw]}


async def test_concurrent_first_writes_to_a_new_topic_all_succeed(gateway: Gateway) -> None:
    # Regression: concurrent auto-creation raced the topic's creation and answered 404.
    async with gateway.client() as http:

        async def one(n: int) -> int:
            path = f"/writer/topics/fresh/streams/s{n}/events/data"
            response = await http.post(path, json=[{"id": "e", "timestamp": n, "value": "v"}])
            return response.status_code

        statuses = await asyncio.gather(*(one(n) for n in range(30)))
    assert statuses == [200] * 30
    assert len(await gateway.read("fresh", 30)) == 30


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"value": 1, "timestamp": 2**70}, "records[0].timestamp"),
        ({"value": 1, "timestamp": -5}, "records[0].timestamp"),
        ({"key": 5, "value": 1}, "records[0].key"),
        ({"value": 1, "headers": {"h": 1}}, "records[0].headers"),
        ({"key": "k"}, "records[0].value"),
    ],
)
async def test_bad_plain_messages_name_the_field(
    gateway: Gateway, record: object, field: str
) -> None:
    # Found by schemathesis: integers beyond 64 bits once gave a 500.
    async with gateway.client() as http:
        response = await http.post("/writer/topics/plain-bad/messages", json=[record])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field
