"""REST polling source against a local HTTP server, into a live gateway."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from streamport.connectors import Runner
from streamport.connectors.rest import RestConfig, RestSource, retry_after
from streamport.errors import ConnectorError
from streamport.model import EventData, StreamProperties, decode
from tests.connectors.conftest import platform
from tests.connectors.standin import stand_in
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


async def test_cursor_pages_retry_after_5xx_and_dedup_by_key(gateway: Gateway) -> None:
    polls = {"n": 0}
    failures = ["429", "503"]

    async def items(request: Request, body: bytes) -> Response:
        cursor = request.query_params.get("cursor")
        if cursor is None and failures and failures[0] == "429":
            failures.pop(0)
            return Response(status_code=429, headers={"Retry-After": "0"})
        if cursor == "c2" and failures:
            failures.pop(0)
            return Response(status_code=503)
        if cursor is None:
            polls["n"] += 1
            page = [{"id": 1, "kind": "a"}, {"id": 2, "kind": "b"}]
            if polls["n"] > 1:
                page.append({"id": 4, "kind": "d"})  # new since the last poll
            return JSONResponse({"data": {"items": page}, "next": "c2"})
        return JSONResponse({"data": {"items": [{"id": 3, "kind": "c"}]}, "next": None})

    async with stand_in({("GET", "/items"): items}) as api:
        config = RestConfig(
            output_topic="orders",
            request_url=api.url + "/items",
            params={"limit": "2"},
            bearer_token="api-token",  # type: ignore[arg-type]
            records_path="data.items",
            pagination="cursor",
            next_path="next",
            dedup_key="id",
            format="events",
            event_id_field="kind",
            interval=0.05,
            retry_initial=0.01,
            **platform(gateway),
        )
        source = RestSource(config)
        runner = Runner(source)
        result = await runner.run(timeout=30, count=5)  # properties + 4 events
    assert result.records_out == 5
    records = await gateway.read("orders", 5)
    messages = [decode(r.value, r.headers) for r in records]
    assert isinstance(messages[0], StreamProperties)
    events = [m for m in messages if isinstance(m, EventData)]
    assert [e.id for e in events] == ["a", "b", "c", "d"]
    assert json.loads(events[3].value) == {"id": 4, "kind": "d"}
    first = api.requests[0]
    assert first.headers["authorization"] == "Bearer api-token"
    assert first.query == {"limit": "2"}
    assert {"limit": "2", "cursor": "c2"} in [r.query for r in api.requests]
    statuses_seen = len(api.requests)
    assert statuses_seen >= 6  # 429, page 1, 503, page 2, then page 1 again (+ page 2)
    text = runner.registry.render().decode()
    assert 'streamport_connector_retries_total{connector="rest-source"} 2.0' in text


async def test_next_link_hash_dedup_messages_and_a_poison_record(gateway: Gateway) -> None:
    async def first(request: Request, body: bytes) -> Response:
        return JSONResponse(
            {"results": [{"sku": "x1", "n": 1}, {"n": 2}, {"sku": "x1", "n": 1}], "next": "/p2"}
        )

    async def second(request: Request, body: bytes) -> Response:
        assert request.query_params.get("page") == "2"
        return JSONResponse({"results": [{"sku": "x3", "n": 3}], "next": None})

    async def redirect(request: Request, body: bytes) -> Response:
        return JSONResponse({"results": [], "next": "/list?page=2"})

    routes = {("GET", "/start"): first, ("GET", "/p2"): redirect, ("GET", "/list"): second}
    async with stand_in(routes) as api:
        config = RestConfig(
            output_topic="skus",
            request_url=api.url + "/start",
            basic_user="me",
            basic_password="pw",  # type: ignore[arg-type]
            records_path="results",
            pagination="next_link",
            format="messages",
            key_field="sku",
            dedup_key="sku",
            interval=60,
            **platform(gateway),
        )
        result = await Runner(RestSource(config)).run(timeout=30, count=2)
    assert result.records_out == 2
    assert result.dead_letters == 1  # {"n": 2} has no sku to de-duplicate by
    records = await gateway.read("skus", 2)
    assert [json.loads(r.value) for r in records] == [{"sku": "x1", "n": 1}, {"sku": "x3", "n": 3}]
    assert [r.key for r in records] == [b"x1", b"x3"]
    (dead,) = await gateway.read("skus-dead-letter", 1)
    assert json.loads(dead.value) == {"n": 2}
    assert b"dedup_key" in dict(dead.headers)["x-error"] or b"sku" in dict(dead.headers)["x-error"]
    expected = "Basic " + base64.b64encode(b"me:pw").decode()
    assert api.requests[0].headers["authorization"] == expected


async def test_link_header_and_content_hash_and_timeseries(gateway: Gateway) -> None:
    calls: list[Any] = []

    async def one(request: Request, body: bytes) -> Response:
        calls.append(1)
        return JSONResponse(
            [{"t": 1_700_000_000_000, "speed": 1.5, "gear": "3"}],
            headers={"Link": '</two>; rel="next"'},
        )

    async def two(request: Request, body: bytes) -> Response:
        return JSONResponse([{"t": 1_700_000_001_000, "speed": 2.5, "gear": "4"}])

    async with stand_in({("GET", "/one"): one, ("GET", "/two"): two}) as api:
        config = RestConfig(
            output_topic="telemetry",
            request_url=api.url + "/one",
            pagination="link_header",
            format="timeseries",
            timestamp_field="t",
            stream_id="car-1",
            interval=0.05,
            **platform(gateway),
        )
        # Polls repeat, the same content is never written twice: 1 properties + 2 rows.
        result = await Runner(RestSource(config)).run(timeout=3)
    assert len(calls) >= 2
    assert result.records_out == 3
    records = await gateway.read("telemetry", 3)
    assert {r.key for r in records} == {b"car-1"}
    rows = [decode(r.value, r.headers) for r in records[1:]]
    assert [row.numeric_values["speed"] for row in rows] == [[1.5], [2.5]]  # type: ignore[union-attr]
    assert rows[0].timestamps == [1_700_000_000_000_000_000]  # type: ignore[union-attr]
    assert [row.string_values["gear"] for row in rows] == [["3"], ["4"]]  # type: ignore[union-attr]


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None
    assert retry_after("nonsense") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


async def test_post_with_a_body_and_a_4xx_stops_the_source(gateway: Gateway) -> None:
    async def search(request: Request, body: bytes) -> Response:
        assert json.loads(body) == {"query": "open"}
        if request.query_params.get("page") == "2":
            return JSONResponse({"error": "gone"}, status_code=404)
        return JSONResponse({"hits": [{"id": "a"}], "next": "/search?page=2"})

    async with stand_in({("POST", "/search"): search}) as api:
        config = RestConfig(
            output_topic="hits",
            request_url=api.url + "/search",
            method="POST",
            body={"query": "open"},
            records_path="hits",
            pagination="next_link",
            format="messages",
            **platform(gateway),
        )
        with pytest.raises(ConnectorError, match="404"):
            await Runner(RestSource(config)).run(timeout=30)
    (record,) = await gateway.read("hits", 1)
    assert json.loads(record.value) == {"id": "a"}
