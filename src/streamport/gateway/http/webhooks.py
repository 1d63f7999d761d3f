"""Inbound webhooks: ``POST /webhooks/{name}``, verified, written as events, answered once durable.

Each webhook names a topic, a verification scheme and a secret:

| verify | signature |
|---|---|
| ``segment`` | ``X-Signature``: hex HMAC-SHA1 of the body |
| ``github`` | ``X-Hub-Signature-256``: ``sha256=`` + hex HMAC-SHA256 of the body |
| ``stripe`` | ``Stripe-Signature: t=<unix>,v1=<hex>``: HMAC-SHA256 of ``<t>.<body>``, ``t`` within the tolerance |
| ``standard`` | Standard Webhooks / Svix: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>`` (also ``svix-*``); HMAC-SHA256 of ``<id>.<timestamp>.<body>`` with the base64 key after ``whsec_`` |
| ``hmac`` | generic: ``algorithm`` (sha1, sha256, sha512) of the body, in ``header``, ``encoding`` hex or base64, optional ``prefix`` |

Signatures are compared in constant time (`hmac.compare_digest`). A bad or missing signature is
401. Replays are refused: timestamps outside ``tolerance`` seconds are 401, and a delivery id seen
before (``X-GitHub-Delivery``, Stripe's event id, ``webhook-id``, Segment's ``messageId``) is
answered 200 without a second write. The last 10,000 ids per webhook are remembered, also on
disk (``webhook-ids/<name>.ids`` in the data directory), so replays are refused across restarts. Bodies over ``maxBodyBytes``
are 413. The body (JSON) becomes an ``EventData`` (id = the provider's event type, value = the
body) in the stream ``webhook-<name>`` of the topic; the 200 is sent only after the write is
durable, so a provider retries anything not acknowledged.

Admin API (scope admin): ``GET /api/webhooks`` (no secrets), ``POST /api/webhooks``,
``DELETE /api/webhooks/{name}``. Secrets are kept in ``webhooks.json`` in the data directory
(mode 0600; HMAC needs the secret itself, so it cannot be hashed like a token) and are never
logged or sent back. The verification and replay protection live in ``streamport/webhooks.py``,
shared with the webhook-source connector.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from streamport.broker import validate_topic_name
from streamport.errors import Unauthenticated, ValidationError
from streamport.gateway._jsonfile import JsonListFile
from streamport.gateway.http.common import decode_json, json_response, principal, read_body
from streamport.gateway.state import GatewayState
from streamport.model import EventData, StreamProperties
from streamport.webhooks import (
    DEFAULT_MAX_BODY,
    NAME,
    SeenIds,
    WebhookSpec,
    body_delivery_id,
    event_type_of,
    verify,
)

log = logging.getLogger("streamport.gateway.webhooks")

WEBHOOKS_FILE = "webhooks.json"
SEEN_DIR = "webhook-ids"  # <name>.ids: delivery ids written, one JSON string a line


class WebhookStore:
    """The webhooks of one data directory, re-read when the file changes (at most once a
    second), so several gateways on one directory agree."""

    def __init__(self, data_dir: Path) -> None:
        self._file = JsonListFile(data_dir / WEBHOOKS_FILE, WebhookSpec, "webhooks")
        self._lock = threading.Lock()
        self._specs: dict[str, WebhookSpec] = {}

    def _load(self, max_age: float = 0.0) -> None:
        specs = self._file.load(max_age)
        if specs is not None:
            self._specs = {s.name: s for s in specs}

    def _save(self) -> None:
        self._file.save(list(self._specs.values()))

    def get(self, name: str) -> WebhookSpec | None:
        with self._lock:
            self._load(max_age=1.0)
            return self._specs.get(name)

    def list(self) -> list[WebhookSpec]:
        with self._lock:
            self._load()
            return sorted(self._specs.values(), key=lambda s: s.name)

    def add(self, spec: WebhookSpec) -> None:
        with self._lock:
            self._load()
            if spec.name in self._specs:
                raise ValidationError(f"a webhook named {spec.name!r} exists already", "name")
            self._specs[spec.name] = spec
            self._save()

    def remove(self, name: str) -> bool:
        with self._lock:
            self._load()
            if self._specs.pop(name, None) is None:
                return False
            self._save()
            return True


# --- HTTP ----------------------------------------------------------------------------------------


class _Meters:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records_in = Counter(
            "streamport_connector_records_in", "Records read", ["connector"], registry=registry
        )
        self.records_out = Counter(
            "streamport_connector_records_out",
            "Records written",
            ["connector"],
            registry=registry,
        )
        self.errors = Counter(
            "streamport_connector_errors",
            "Failures by kind",
            ["connector", "kind"],
            registry=registry,
        )


class Webhooks:
    """The webhooks of one gateway app: the store, the seen ids, the routes."""

    def __init__(self, state: GatewayState, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._store = WebhookStore(state.settings.data_dir)
        self._seen: dict[str, SeenIds] = {}
        self._announced: set[tuple[str, str]] = set()
        self._clock = clock
        self._meters = _Meters(state.metrics.registry)

    def _seen_ids(self, name: str) -> SeenIds:
        return SeenIds(path=self._state.settings.data_dir / SEEN_DIR / f"{name}.ids")

    def routes(self) -> list[BaseRoute]:
        """Mount these before the ``/api`` mount (which would otherwise take /api/webhooks)."""
        return [
            Route("/webhooks/{name}", self.receive, methods=["POST"]),
            Route("/api/webhooks", self.list, methods=["GET"]),
            Route("/api/webhooks", self.add, methods=["POST"]),
            Route("/api/webhooks/{name}", self.remove, methods=["DELETE"]),
        ]

    async def list(self, request: Request) -> Response:
        principal(request, "admin")
        return json_response([s.public() for s in self._store.list()])

    async def add(self, request: Request) -> Response:
        principal(request, "admin")
        body = decode_json(await read_body(request))
        spec = parse_spec(body, self._state.settings.max_body_bytes, self._clock())
        self._store.add(spec)
        log.info("webhook %s added (topic %s, verify %s)", spec.name, spec.topic, spec.verify)
        return json_response(spec.public(), 201)

    async def remove(self, request: Request) -> Response:
        principal(request, "admin")
        name = request.path_params["name"]
        if not self._store.remove(name):
            raise HTTPException(404, f"no webhook named {name!r}")
        seen = self._seen.pop(name, None) or self._seen_ids(name)
        await asyncio.to_thread(seen.forget)
        return Response(status_code=204)

    async def _read(self, request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"request body is over the webhook's limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413, f"request body is over the webhook's limit of {limit} bytes"
                    )
                chunks.append(chunk)
        except ClientDisconnect:
            raise
        return b"".join(chunks)

    async def receive(self, request: Request) -> Response:
        name = request.path_params["name"]
        spec = self._store.get(name)
        if spec is None:
            raise HTTPException(404, f"no webhook named {name!r}")
        label = f"webhook:{name}"
        try:
            body = await self._read(request, spec.max_body_bytes)
        except HTTPException:
            self._meters.errors.labels(label, "too_large").inc()
            raise
        try:
            delivery = verify(spec, request.headers, body, self._clock())
        except Unauthenticated:
            self._meters.errors.labels(label, "unauthorized").inc()
            raise
        self._meters.records_in.labels(label).inc()
        try:
            payload = decode_json(body)
        except ValidationError:
            self._meters.errors.labels(label, "invalid").inc()
            raise
        delivery_id = delivery.id or body_delivery_id(spec, payload)
        event = EventData(
            id=event_type_of(spec, delivery, payload),
            timestamp=time.time_ns(),
            value=body.decode("utf-8", errors="replace"),
            tags={"webhook": name, **({"deliveryId": delivery_id} if delivery_id else {})},
        )
        seen = self._seen.get(name) or self._seen.setdefault(name, self._seen_ids(name))
        if delivery_id is not None and not await seen.claim(delivery_id):
            return json_response({"status": "duplicate", "id": delivery_id})
        written = False
        try:
            await self._write(spec, event)
            written = True
        finally:
            if delivery_id is not None:
                await seen.finish(delivery_id, written)
        self._meters.records_out.labels(label).inc()
        return json_response({"status": "written", "id": delivery_id})

    async def _write(self, spec: WebhookSpec, event: EventData) -> None:
        stream_id = f"webhook-{spec.name}"
        writer = self._state.writer
        if (spec.topic, stream_id) in self._announced:
            await writer.write(spec.topic, stream_id, event)
            return
        # The first delivery in this process also names the stream, so Reader API clients see it.
        await writer.write(
            spec.topic, stream_id, StreamProperties(name=f"webhook {spec.name}"), event
        )
        self._announced.add((spec.topic, stream_id))


def parse_spec(body: Any, max_body_limit: int, now: float) -> WebhookSpec:
    """A webhook from an admin API body (camelCase), validated field by field."""
    if not isinstance(body, dict):
        raise ValidationError("body must be an object with name, topic, verify, secret", "body")
    name = body.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValidationError("name must be 1 to 64 letters, digits, '.', '_' or '-'", field="name")
    topic = body.get("topic")
    if not isinstance(topic, str):
        raise ValidationError("topic is required", field="topic")
    validate_topic_name(topic)
    choices: dict[str, tuple[str, ...]] = {
        "verify": ("segment", "github", "stripe", "standard", "hmac"),
        "algorithm": ("sha1", "sha256", "sha512"),
        "encoding": ("hex", "base64"),
    }
    for field, allowed in choices.items():
        value = body.get(field, allowed[1] if field == "algorithm" else allowed[0])
        if field == "verify" and field not in body:
            raise ValidationError(f"verify is required: one of {', '.join(allowed)}", "verify")
        if value not in allowed:
            raise ValidationError(f"{field} must be one of {', '.join(allowed)}", field=field)
    secret = body.get("secret")
    if not isinstance(secret, str) or not secret:
        raise ValidationError("secret is required (the provider's signing secret)", "secret")
    tolerance = body.get("tolerance", 300)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
        raise ValidationError("tolerance must be a whole number of seconds >= 1", "tolerance")
    limit = body.get("maxBodyBytes", min(DEFAULT_MAX_BODY, max_body_limit))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_body_limit:
        raise ValidationError(
            f"maxBodyBytes must be between 1 and the server's limit {max_body_limit}",
            "maxBodyBytes",
        )
    header = body.get("header", "x-signature")
    prefix = body.get("prefix", "")
    event_field = body.get("eventTypeField", "type")
    for field, value in (("header", header), ("prefix", prefix), ("eventTypeField", event_field)):
        if not isinstance(value, str):
            raise ValidationError(f"{field} must be a string", field=field)
    return WebhookSpec(
        name=name,
        topic=topic,
        verify=body["verify"],
        secret=secret,
        algorithm=body.get("algorithm", "sha256"),
        header=header,
        encoding=body.get("encoding", "hex"),
        prefix=prefix,
        tolerance=tolerance,
        event_type_field=event_field,
        max_body_bytes=limit,
        created=now,
    )
