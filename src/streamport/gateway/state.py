"""What the gateway's endpoints share: a `GatewayState` on the app (``app.gateway``, also
``app.state.gateway``), reached from a request with `state_of`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from streamport.broker import Broker
from streamport.gateway.auth import TokenStore
from streamport.gateway.metrics import Metrics
from streamport.settings import Settings
from streamport.streams.writer import Writer


@dataclass
class GatewayState:
    settings: Settings
    broker: Broker
    tokens: TokenStore
    writer: Writer
    metrics: Metrics
    # Consumer groups seen by this process, so /metrics can report their lag.
    groups: set[tuple[str, str]] = field(default_factory=set)


FastPath = Callable[["GatewayApp", Scope, Receive, Send], Awaitable[bool]]
"""Serves one HTTP request without Starlette's stack and returns True, or returns False untouched."""


class GatewayApp(Starlette):
    """The gateway's Starlette app, carrying its state as a plain attribute: every request
    reaches it, and Starlette's ``app.state`` goes through a slow ``__getattr__``.

    `fast_paths` are tried before Starlette's middleware and routing for HTTP requests: the
    hottest endpoints (the Writer API's data writes) skip about 85k instructions of framework per
    request that way. A fast path renders its own errors with the same handlers.
    """

    gateway: GatewayState
    fast_paths: Sequence[FastPath] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for fast in self.fast_paths:
                if await fast(self, scope, receive, send):
                    return
        await super().__call__(scope, receive, send)


def state_of(connection: HTTPConnection) -> GatewayState:
    app: GatewayApp = connection.scope["app"]
    return app.gateway
