"""What the gateway's endpoints share: a `GatewayState` on the app (``app.gateway``, also
``app.state.gateway``), reached from a request with `state_of`."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

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


class GatewayApp(Starlette):
    """The gateway's Starlette app, carrying its state as a plain attribute: every request
    reaches it, and Starlette's ``app.state`` goes through a slow ``__getattr__``."""

    gateway: GatewayState


def state_of(connection: HTTPConnection) -> GatewayState:
    app: GatewayApp = connection.scope["app"]
    return app.gateway
