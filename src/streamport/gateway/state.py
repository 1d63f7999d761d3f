"""What the gateway's endpoints share, held on ``app.state.gateway``."""

from __future__ import annotations

from dataclasses import dataclass, field

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
