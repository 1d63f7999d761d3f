"""The Writer and Reader hubs with the real @microsoft/signalr client under Node (JSON and
MessagePack), against a real gateway (uvicorn, embedded broker)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from streamport.broker import Record
from streamport.model import EventData, encode
from tests.gateway.conftest import Gateway, GatewayFactory
from tests.gateway.hubs.support import NodeReader, run_node

pytestmark = pytest.mark.integration

TS = 1700000000000000000


def js_time(offset: int) -> int:
    """`TS + offset` as a JavaScript client shows it: a double, printed by JSON.stringify in its
    shortest decimal form (the hubs receive it as that text with JSON, as the float64 itself with
    MessagePack, and the reader sees it again through a double)."""
    return int(Decimal(repr(float(TS + offset))))


def config(gateway: Gateway, **extra: Any) -> dict[str, Any]:
    return {"url": gateway.url, "token": gateway.token, "protocol": "json", **extra}


@pytest.mark.parametrize("protocol", ["json", "msgpack"])
async def test_writer_hub_to_reader_hub(gateway: Gateway, protocol: str) -> None:
    out = await run_node("scenario", config(gateway, protocol=protocol, topic="cars"))
    got = out["got"]
    stream_id = out["streamId"]
    assert out["activeBefore"] == []

    [data] = got["ParameterDataReceived"]
    assert data["topicName"] == "cars" and data["topicId"] == "cars"
    assert data["streamId"] == stream_id
    assert data["timestamps"] == [TS, js_time(1024)]
    assert data["numericValues"] == {"speed": [100.5, 101]}  # only the subscribed parameter
    assert data["stringValues"] == {} and data["tagValues"] == {"driver": ["A", "A"]}

    events = got["EventDataReceived"]
    assert [(e["id"], e["value"], e["timestamp"]) for e in events] == [
        ("Alert", "Help", TS),
        ("Lap", "1", js_time(2048)),
        ("Pit", "in", js_time(3072)),
    ]
    assert events[0]["tags"] == {"capacity": "over"} and events[0]["streamId"] == stream_id

    packages = got["PackageReceived"]
    types = [p["type"].rsplit(".", 1)[-1] for p in packages]
    assert types == [
        "StreamProperties",
        "ParameterDefinitions",
        "TimeseriesDataRaw",
        "EventDataRaw[]",
        "EventDataRaw",
        "StreamProperties",
        "StreamProperties",
        "StreamEnd",
        "EventDataRaw[]",  # after UnsubscribeFromEvent: packages still flow, events do not
    ]
    assert json.loads(packages[3]["value"])[0]["Value"] == "Help"
    assert json.loads(packages[2]["value"])["NumericValues"]["rpm"] == [9000, 9100]
    assert len(got["EventDataReceived"]) == 3

    [defs] = got["ParameterDefinitionsUpdated"]
    assert defs["definitions"][0]["id"] == "speed" and defs["definitions"][0]["unit"] == "km/h"

    changes = got["ActiveStreamsChanged"]
    assert changes[0][0]["streamId"] == stream_id and changes[0][1] == "AddUpdate"
    assert changes[0][0]["name"] == "car 1" and changes[0][0]["metadata"] == {"team": "red"}
    mine = [(c[1], c[0]["status"]) for c in changes if c[0]["streamId"] == stream_id]
    closed = mine.index(("Remove", "Closed"))
    assert mine[closed - 1] == ("AddUpdate", "Closed")

    assert out["update3"] == {"streamId": stream_id}
    fresh = out["update2"]["streamId"]
    assert fresh != stream_id
    assert [s["streamId"] for s in out["activeAfter"]] == [fresh]
    assert out["activeAfter"][0]["name"] == "fresh"
    assert isinstance(out["metrics"], list)


async def test_reader_sees_http_writes_and_direct_broker_produce(gateway: Gateway) -> None:
    async with gateway.client() as http:
        assert (await http.post("/api/topics", json={"name": "mixed"})).status_code in (200, 201)
    reader = NodeReader(
        config(
            gateway,
            subscribe=[["SubscribeToEvent", "mixed", "*", "*"], ["SubscribeToPackages", "mixed"]],
            expect={"EventDataReceived": 2, "PackageReceived": 3},
        )
    )
    async with reader:
        async with gateway.client() as http:
            response = await http.post(
                "/writer/topics/mixed/streams/s-http/events/data",
                json=[{"id": "FromHttp", "timestamp": TS, "value": "h"}],
            )
            assert response.status_code == 200, response.text
        event = EventData(id="FromBroker", timestamp=TS, value="b")
        await gateway.broker.produce("mixed", [Record(encode(event), key=b"s-kafka")])
        await gateway.broker.produce("mixed", [Record(b"plain text", key=b"s-raw")])
        out = await reader.result()
    events = out["got"]["EventDataReceived"]
    assert sorted((e["streamId"], e["id"]) for e in events) == [
        ("s-http", "FromHttp"),
        ("s-kafka", "FromBroker"),
    ]
    raw = [p for p in out["got"]["PackageReceived"] if p["streamId"] == "s-raw"]
    assert raw[0]["type"] == "System.Byte[]" and raw[0]["value"] == "plain text"


async def test_topic_given_with_a_workspace_prefix(gateway: Gateway) -> None:
    async with gateway.client() as http:
        await http.post("/api/topics", json={"name": "cars"})
    out = await run_node(
        "invoke",
        config(
            gateway,
            hub="writer",
            calls=[["CreateStream", "acme-prod-cars", {"name": "x"}]],
        ),
    )
    [created] = out["results"]
    stream_id = created["result"]["streamId"]
    records = await gateway.read("cars", 1)
    assert records[0].key == stream_id.encode()


async def test_bad_input_gets_errors_naming_the_field(gateway: Gateway) -> None:
    calls = [
        [
            "SendParameterData",
            "cars",
            "s1",
            {"timestamps": [1, 2, 3], "numericValues": {"speed": [1, 2]}},
        ],
        ["SendParameterData", "cars", "s1", {"timestamps": [1, "x"]}],
        ["SendEventData", "cars", "s1", [{"id": "A"}]],
        ["SendParameterData", "cars", "s1"],  # wrong argument count
        ["SendParameterData", "cars", "a/b", {"timestamps": []}],
        ["CreateStream", "bad topic!", {}],
        ["CloseStream", "cars", 42],
        ["UpdateStream", "cars"],
    ]
    out = await run_node("invoke", config(gateway, hub="writer", calls=calls))
    errors = [r.get("error", "") for r in out["results"]]
    assert "timestamps has 3 items but numericValues.speed has 2" in errors[0]
    assert "timestamps[1]" in errors[1]
    assert "[0].timestamp" in errors[2] and "required" in errors[2]
    # binding errors carry ASP.NET's generic text (details only with detailed_errors)
    assert "Failed to invoke 'SendParameterData' due to an error on the server" in errors[3]
    assert "streamId" in errors[4]
    assert "topic" in errors[5].lower()
    assert "streamId must be a string" in errors[6]
    assert "Failed to invoke 'UpdateStream'" in errors[7]
    assert all(errors), out
    # nothing invalid was written
    assert "cars" not in {t.name for t in await gateway.broker.list_topics()}


async def test_scopes_are_checked_per_topic(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    token = gateway.tokens.create("limited", ["read:open", "write:open"])
    reader_calls = {
        "url": gateway.url,
        "token": token,
        "protocol": "json",
        "subscribe": [
            ["SubscribeToPackages", "open"],
            ["SubscribeToEvent", "secret", "*", "*"],
        ],
        "expect": {},
    }
    out = await run_node("read", reader_calls)
    ok, denied = out["results"]
    assert "error" not in ok
    assert "403 Forbidden" in denied["error"] and "read:secret" in denied["error"]
    out = await run_node(
        "invoke",
        {
            "url": gateway.url,
            "token": token,
            "hub": "writer",
            "calls": [["CreateStream", "open", {}], ["CreateStream", "secret", {}]],
        },
    )
    ok, denied = out["results"]
    assert "streamId" in ok["result"]
    assert "403 Forbidden" in denied["error"] and "write:secret" in denied["error"]


async def test_bad_token_is_refused(gateway: Gateway) -> None:
    async with gateway.client(token="nope") as http:
        response = await http.post("/reader/hub/negotiate?negotiateVersion=1")
    assert response.status_code == 401
    async with gateway.client(token=None) as http:
        response = await http.post("/writer/hub/negotiate?negotiateVersion=1")
    assert response.status_code == 401
