from __future__ import annotations

import msgspec
import pytest

from tests.gateway.conftest import Gateway, GatewayFactory

pytestmark = pytest.mark.integration


async def test_healthz_and_metrics(gateway: Gateway) -> None:
    async with gateway.client(token=None) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    async with gateway.client() as http:
        await http.post("/api/topics/m1/records", json=[{"value": 1}, {"value": 2}])
        metrics = (await http.get("/metrics")).text
    assert 'streamport_records_in_total{topic="m1"} 2.0' in metrics
    assert "streamport_produce_latency_seconds_bucket" in metrics


async def test_topic_lifecycle(gateway: Gateway) -> None:
    async with gateway.client() as http:
        created = await http.post("/api/topics", json={"name": "cars", "partitions": 3})
        assert created.status_code == 201, created.text
        assert created.json()["partitions"] == 3
        again = await http.post("/api/topics", json={"name": "cars"})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "topic_exists"
        names = [t["name"] for t in (await http.get("/api/topics")).json()]
        assert "cars" in names
        described = (await http.get("/api/topics/cars")).json()
        assert [p["high"] for p in described["partitionOffsets"]] == [0, 0, 0]
        assert (await http.delete("/api/topics/cars")).status_code == 204
        missing = await http.get("/api/topics/cars")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "unknown_topic"


@pytest.mark.parametrize("name", ["a b", "x" * 250, "sl/ash", "..", "é"])
async def test_invalid_topic_names_are_refused(gateway: Gateway, name: str) -> None:
    async with gateway.client() as http:
        response = await http.post("/api/topics", json={"name": name})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "topic"


async def test_produce_and_consume_with_group(gateway: Gateway) -> None:
    async with gateway.client() as http:
        placed = await http.post(
            "/api/topics/plain/records",
            json=[
                {"key": "k1", "value": {"a": 1}, "headers": {"h": "v"}, "timestamp": 1000},
                {"value": "text"},
            ],
        )
        assert placed.status_code == 200, placed.text
        assert [o["offset"] for o in placed.json()["offsets"]] == [0, 1]
        lines = []
        params = {"group": "g1", "fromBeginning": "true", "count": 2}
        async with http.stream("GET", "/api/topics/plain/records", params=params) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                lines.append(msgspec.json.decode(line))
        assert lines[0]["key"] == "k1"
        assert lines[0]["value"] == {"a": 1}
        assert lines[0]["headers"] == {"h": "v"}
        assert lines[0]["timestamp"] == 1000
        assert lines[1]["value"] == "text"
        lag = (await http.get("/api/groups/g1/lag", params={"topic": "plain"})).json()
        assert lag["lag"] == {"0": 0}
        metrics = (await http.get("/metrics")).text
        assert 'streamport_records_out_total{topic="plain"} 2.0' in metrics
        assert 'streamport_consumer_lag{group="g1",partition="0",topic="plain"} 0.0' in metrics
        # The group committed: a new read in the same group sees only new records.
        await http.post("/api/topics/plain/records", json=[{"value": 3}])
        params = {"group": "g1", "fromBeginning": "true", "count": 1}
        async with http.stream("GET", "/api/topics/plain/records", params=params) as response:
            rest = [msgspec.json.decode(line) async for line in response.aiter_lines()]
        assert [r["value"] for r in rest] == [3]


async def test_consume_unknown_topic_is_404(gateway: Gateway) -> None:
    async with gateway.client() as http:
        response = await http.get("/api/topics/nope/records", params={"count": 1})
    assert response.status_code == 404


async def test_record_over_the_limit_is_413(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(max_record_bytes=100)
    async with gateway.client() as http:
        response = await http.post("/api/topics/big/records", json=[{"value": "x" * 200}])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "record_too_large"


async def test_admin_scope_required(gateway: Gateway) -> None:
    writer = gateway.tokens.create("w", ["write:*"])
    async with gateway.client(token=None) as http:
        assert (await http.get("/api/topics")).status_code == 401
    async with gateway.client(token=writer) as http:
        denied = await http.get("/api/topics")
        assert denied.status_code == 403
        assert (await http.post("/api/topics/x/records", json=[{"value": 1}])).status_code == 200


async def test_tokens_api(gateway: Gateway) -> None:
    async with gateway.client() as http:
        created = await http.post("/api/tokens", json={"name": "dash", "scopes": ["read:cars"]})
        assert created.status_code == 201
        token = created.json()["token"]
        listed = (await http.get("/api/tokens")).json()
        assert {"dash", "test-admin"} <= {t["name"] for t in listed}
        assert all("token" not in t for t in listed)
        assert (await http.delete("/api/tokens/dash")).status_code == 204
    async with gateway.client(token=token) as http:
        assert (await http.get("/api/topics/cars/records")).status_code == 401
