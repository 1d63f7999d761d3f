"""Webhook source: the gateway's signed inbound webhooks, as a connector of its own.

The usual way to receive webhooks is the gateway itself (``streamport webhooks add``, served at
``/webhooks/{name}`` with the public URL of the server; see ``gateway/http/webhooks.py``). This
connector runs the same verification (Segment, GitHub, Stripe, Standard Webhooks / Svix, generic
HMAC), replay protection and body limit in a small HTTP server of its own, for a receiver that
must live elsewhere (another host, a DMZ) and write to a server or to Kafka. It answers 200 only
once the event is durable in the output topic.

Example::

    output_topic: github
    listen_port: 9100        # POST http://HOST:9100/webhooks/github
    webhook: github
    verify: github
    secret: ...              # secret
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

import msgspec
import uvicorn
from pydantic import Field, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streamport.connectors.base import Source, SourceRecord
from streamport.connectors.config import SourceConfig
from streamport.connectors.runtime import Output
from streamport.errors import Unauthenticated
from streamport.model import EventData, StreamProperties, encode
from streamport.webhooks import (
    SeenIds,
    WebhookSpec,
    body_delivery_id,
    event_type_of,
    verify,
)


class WebhookSourceConfig(SourceConfig):
    webhook: str = Field(default="default", description="name in the path /webhooks/NAME")
    listen_host: str = Field(default="127.0.0.1", description="address to listen on")
    listen_port: int = Field(default=9100, ge=0, le=65535, description="port (0 = any free)")
    verify: Literal["segment", "github", "stripe", "standard", "hmac"] = Field(
        description="segment, github, stripe, standard or hmac"
    )
    secret: SecretStr = Field(description="the provider's signing secret")
    algorithm: Literal["sha1", "sha256", "sha512"] = Field(default="sha256", description="hmac")
    header: str = Field(default="x-signature", description="hmac: signature header")
    encoding: Literal["hex", "base64"] = Field(default="hex", description="hmac: hex or base64")
    prefix: str = Field(default="", description="hmac: signature prefix")
    tolerance: int = Field(default=300, ge=1, description="seconds a signed timestamp may be off")
    event_type_field: str = Field(default="type", description="dotted path of the event type")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="body size limit")


class WebhookSource(Source[WebhookSourceConfig]):
    name = "webhook-source"
    summary = "receive signed webhooks (Segment, GitHub, Stripe, Standard Webhooks, HMAC)"
    config_class = WebhookSourceConfig

    def __init__(self, config: WebhookSourceConfig) -> None:
        super().__init__(config)
        c = config
        self._spec = WebhookSpec(
            name=c.webhook,
            topic=c.output_topic,
            verify=c.verify,
            secret=c.secret.get_secret_value(),
            algorithm=c.algorithm,
            header=c.header,
            encoding=c.encoding,
            prefix=c.prefix,
            tolerance=c.tolerance,
            event_type_field=c.event_type_field,
            max_body_bytes=c.max_body_bytes,
        )
        self._seen = SeenIds()
        self._output: Output | None = None
        self._announced = False
        self.port: int | None = None  # the bound port, once listening

    async def _receive(self, request: Request) -> Response:
        assert self._output is not None
        if request.path_params["name"] != self._spec.name:
            return JSONResponse({"error": "no such webhook"}, 404)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._spec.max_body_bytes:
                return JSONResponse({"error": "body too large"}, 413)
        try:
            delivery = verify(self._spec, request.headers, body, time.time())
        except Unauthenticated as exc:
            self._output.metrics.error("unauthorized")
            return JSONResponse({"error": str(exc)}, 401)
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return JSONResponse({"error": "body is not JSON"}, 400)
        self._output.metrics.read()
        delivery_id = delivery.id or body_delivery_id(self._spec, payload)
        if delivery_id is not None and not await self._seen.claim(delivery_id):
            return JSONResponse({"status": "duplicate", "id": delivery_id})
        event = EventData(
            id=event_type_of(self._spec, delivery, payload),
            timestamp=time.time_ns(),
            value=body.decode("utf-8", errors="replace"),
            tags={
                "webhook": self._spec.name,
                **({"deliveryId": delivery_id} if delivery_id else {}),
            },
        )
        key = f"webhook-{self._spec.name}".encode()
        records = [SourceRecord(encode(event), key)]
        if not self._announced:
            name = f"webhook {self._spec.name}"
            records.insert(0, SourceRecord(encode(StreamProperties(name=name)), key))
        written = False
        try:
            await self._output.send(records)
            written = True
            self._announced = True
        finally:
            if delivery_id is not None:
                await self._seen.finish(delivery_id, written)
        return JSONResponse({"status": "written", "id": delivery_id})

    async def run(self, output: Output) -> None:
        self._output = output
        app = Starlette(routes=[Route("/webhooks/{name}", self._receive, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host=self.config.listen_host,
            port=self.config.listen_port,
            log_level="warning",
            lifespan="off",
        )
        server = uvicorn.Server(config)
        serving = asyncio.ensure_future(server.serve())
        try:
            while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no started event
                await asyncio.sleep(0.01)
            if serving.done():
                serving.result()
                return
            self.port = server.servers[0].sockets[0].getsockname()[1]
            stopping = asyncio.ensure_future(output.stopping.wait())
            await asyncio.wait({serving, stopping}, return_when="FIRST_COMPLETED")
            stopping.cancel()
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving
