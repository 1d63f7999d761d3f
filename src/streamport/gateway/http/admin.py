"""The admin HTTP API under ``/api``: topics, plain produce and consume, consumer lag, tokens.

The CLI speaks only this API, so it works the same over the embedded broker and over Kafka.

| Method | Path | Scope |
|---|---|---|
| GET | /api/topics | admin |
| POST | /api/topics  ``{"name", "partitions", "retentionMs", "retentionBytes"}`` | admin |
| GET / DELETE | /api/topics/{topic} | admin |
| POST | /api/topics/{topic}/records  (records JSON, see records.py) | write:{topic} |
| GET | /api/topics/{topic}/records?group=&fromBeginning=&count=&idleTimeout= (NDJSON stream) | read:{topic} |
| GET | /api/groups/{group}/lag?topic= | read:{topic} |
| GET / POST | /api/tokens | admin |
| DELETE | /api/tokens/{name} | admin |
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from streamport.broker import (
    OffsetReset,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    validate_topic_name,
)
from streamport.broker.base import DEFAULT_RETENTION_MS
from streamport.errors import ValidationError
from streamport.gateway.auth import validate_scopes
from streamport.gateway.http.common import decode_json, json_response, principal, read_body
from streamport.gateway.http.records import parse_records, record_to_json
from streamport.gateway.state import GatewayState, state_of


def _state(request: Request) -> GatewayState:
    state = state_of(request)
    return state


def _topic_json(info: TopicInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "partitions": info.partitions,
        "retentionMs": info.retention_ms,
        "retentionBytes": info.retention_bytes,
    }


def _int_field(body: dict[str, Any], name: str, default: int, minimum: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} must be an integer >= {minimum}", field=name)
    return value


async def list_topics(request: Request) -> Response:
    principal(request, "admin")
    topics = await _state(request).broker.list_topics()
    return json_response([_topic_json(t) for t in sorted(topics, key=lambda t: t.name)])


async def create_topic(request: Request) -> Response:
    principal(request, "admin")
    body = decode_json(await read_body(request))
    if not isinstance(body, dict):
        raise ValidationError("body must be an object with a 'name'", field="body")
    name = validate_topic_name(body.get("name"))  # type: ignore[arg-type]
    config = TopicConfig(
        partitions=_int_field(body, "partitions", _state(request).settings.default_partitions, 1),
        retention_ms=_int_field(body, "retentionMs", DEFAULT_RETENTION_MS, -1),
        retention_bytes=_int_field(body, "retentionBytes", -1, -1),
    )
    info = await _state(request).broker.create_topic(name, config)
    return json_response(_topic_json(info), 201)


async def describe_topic(request: Request) -> Response:
    principal(request, "admin")
    broker = _state(request).broker
    name = validate_topic_name(request.path_params["topic"])
    info = await broker.describe_topic(name)
    marks = await broker.watermarks(name)
    out = _topic_json(info)
    out["partitionOffsets"] = [
        {"partition": p, "low": m.low, "high": m.high} for p, m in enumerate(marks)
    ]
    return json_response(out)


async def delete_topic(request: Request) -> Response:
    principal(request, "admin")
    await _state(request).broker.delete_topic(validate_topic_name(request.path_params["topic"]))
    return Response(status_code=204)


async def produce(request: Request) -> Response:
    topic = validate_topic_name(request.path_params["topic"])
    principal(request, "write", topic)
    records = parse_records(decode_json(await read_body(request)))
    placed = await _state(request).writer.produce(topic, records)
    return json_response({"offsets": [{"partition": p, "offset": o} for p, o in placed]})


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in ("1", "true", "yes")


def _number(request: Request, name: str, default: float | None) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a number", field=name) from None
    if value < 0:
        raise ValidationError(f"{name} must not be negative", field=name)
    return value


async def consume(request: Request) -> Response:
    """Stream records as JSON lines until `count` records or `idleTimeout` seconds without data.

    With a `group`, each batch is committed after it was written to the response, so a
    consumer that disconnects re-reads at most the batch in flight (at-least-once).
    """
    state = _state(request)
    topic = validate_topic_name(request.path_params["topic"])
    principal(request, "read", topic)
    await state.broker.describe_topic(topic)  # 404 before the 200 stream starts
    group = request.query_params.get("group") or None
    count = _number(request, "count", None)
    idle = _number(request, "idleTimeout", None)
    reset: OffsetReset = "earliest" if _flag(request, "fromBeginning") else "latest"
    consumer = state.broker.consumer([topic], group=group, auto_offset_reset=reset)
    await consumer.start()
    if group is not None:
        state.groups.add((group, topic))
    encode = msgspec.json.encode

    async def lines() -> AsyncIterator[bytes]:
        sent = 0
        last_data = time.monotonic()
        try:
            while count is None or sent < count:
                want = 1000 if count is None else min(1000, int(count) - sent)
                batch = await consumer.fetch(max_records=want, timeout=0.5)
                if not batch:
                    if idle is not None and time.monotonic() - last_data >= idle:
                        return
                    continue
                last_data = time.monotonic()
                sent += len(batch)
                state.metrics.records_out.labels(topic).inc(len(batch))
                yield b"".join(encode(record_to_json(r)) + b"\n" for r in batch)
                if group is not None:
                    await consumer.commit(
                        {TopicPartition(r.topic, r.partition): r.offset + 1 for r in batch}
                    )
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(consumer.aclose())

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def group_lag(request: Request) -> Response:
    topic = request.query_params.get("topic")
    if not topic:
        raise ValidationError("the query parameter topic is required", field="topic")
    validate_topic_name(topic)
    principal(request, "read", topic)
    lag = await _state(request).broker.lag(request.path_params["group"], topic)
    return json_response(
        {
            "group": request.path_params["group"],
            "topic": topic,
            "lag": {str(p): n for p, n in sorted(lag.items())},
        }
    )


async def list_tokens(request: Request) -> Response:
    principal(request, "admin")
    return json_response(
        [
            {"name": t.name, "scopes": t.scopes, "created": t.created}
            for t in _state(request).tokens.list()
        ]
    )


async def create_token(request: Request) -> Response:
    principal(request, "admin")
    body = decode_json(await read_body(request))
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise ValidationError("body must be an object with a string 'name'", field="name")
    scopes = body.get("scopes") or ["admin"]
    if not isinstance(scopes, list):
        raise ValidationError("scopes must be an array of strings", field="scopes")
    validate_scopes(scopes)
    token = _state(request).tokens.create(body["name"], scopes)
    return json_response({"name": body["name"], "scopes": scopes, "token": token}, 201)


async def revoke_token(request: Request) -> Response:
    principal(request, "admin")
    if not _state(request).tokens.revoke(request.path_params["name"]):
        raise ValidationError(f"no token named {request.path_params['name']!r}", field="name")
    return Response(status_code=204)


routes = [
    Route("/topics", list_topics, methods=["GET"]),
    Route("/topics", create_topic, methods=["POST"]),
    Route("/topics/{topic}", describe_topic, methods=["GET"]),
    Route("/topics/{topic}", delete_topic, methods=["DELETE"]),
    Route("/topics/{topic}/records", produce, methods=["POST"]),
    Route("/topics/{topic}/records", consume, methods=["GET"]),
    Route("/groups/{group}/lag", group_lag, methods=["GET"]),
    Route("/tokens", list_tokens, methods=["GET"]),
    Route("/tokens", create_token, methods=["POST"]),
    Route("/tokens/{name}", revoke_token, methods=["DELETE"]),
]
