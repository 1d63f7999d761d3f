"""The ASGI application of one gateway process.

Routes: ``/healthz``, ``/metrics``, ``/api`` (admin, see http/admin.py) and, as they are built, the
Writer API (``/writer``) and the SignalR hubs. The app owns the broker's lifecycle: it is started
in the lifespan and closed at shutdown; ``/healthz`` answers 200 only in between.

Example::

    app = create_app(settings, EmbeddedBroker(settings.data_dir))
    uvicorn.run(app, ws_ping_interval=None)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from streamport._version import __version__
from streamport.broker import Broker
from streamport.errors import StreamportError
from streamport.gateway import native
from streamport.gateway.auth import TokenStore
from streamport.gateway.http import admin, openapi, writer
from streamport.gateway.http.common import (
    handle_http_error,
    handle_streamport_error,
    handle_unexpected,
    json_response,
)
from streamport.gateway.http.webhooks import Webhooks
from streamport.gateway.hubs import Hubs
from streamport.gateway.metrics import Metrics
from streamport.gateway.state import GatewayApp, GatewayState
from streamport.settings import Settings
from streamport.streams.writer import Writer


async def healthz(request: Request) -> Response:
    ready: bool = request.app.state.ready
    status = 200 if ready else 503
    return json_response({"status": "ok" if ready else "starting", "version": __version__}, status)


async def metrics(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    for group, topic in sorted(state.groups):
        with contextlib.suppress(StreamportError):
            for partition, lag in (await state.broker.lag(group, topic)).items():
                state.metrics.consumer_lag.labels(group, topic, str(partition)).set(lag)
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")


def create_app(
    settings: Settings,
    broker: Broker,
    *,
    tokens: TokenStore | None = None,
    manage_broker: bool = True,
) -> Starlette:
    """The gateway app over `broker`. With `manage_broker` the app's lifespan starts and closes
    the broker; without, the caller does (``streamport up`` does, to report startup errors cleanly)."""
    settings.check_auth_allowed()
    meters = Metrics()
    state = GatewayState(
        settings=settings,
        broker=broker,
        tokens=tokens or TokenStore(settings.data_dir),
        writer=Writer(
            broker,
            auto_create_topics=settings.auto_create_topics,
            default_partitions=settings.default_partitions,
            observe=meters.observe_produce,
        ),
        metrics=meters,
    )
    hubs = Hubs(state)  # the Writer/Reader SignalR hubs and the read fan-out

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_broker:
            await broker.start()
        await hubs.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await hubs.aclose()
            if manage_broker:
                await broker.aclose()

    routes: list[BaseRoute] = [
        Mount(writer.PREFIX, routes=writer.routes),  # first: the hottest paths
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *hubs.routes,  # /writer/hub and /reader/hub
        native.route(),  # the SDK's WebSocket at /sdk/ws
        *Webhooks(state).routes(),  # /webhooks/{name} and /api/webhooks, before the /api mount
        Mount("/api", routes=admin.routes),
        *openapi.routes(),
    ]
    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            StreamportError: handle_streamport_error,
            HTTPException: handle_http_error,
            Exception: handle_unexpected,
        },
    )
    app.gateway = state
    app.fast_paths = (writer.data_fast_path,)
    app.state.gateway = state
    app.state.ready = False
    return app
