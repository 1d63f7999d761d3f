"""Where a connector reads and writes: a streamport server (the SDK's WebSocket protocol) or
Apache Kafka directly (the SDK's Kafka transport). Both sit behind the SDK's `Transport` seam."""

from __future__ import annotations

from streamport.client._native import NativeTransport
from streamport.client._transport import KafkaTransport, Subscription, Transport
from streamport.connectors.config import ConnectorConfig

__all__ = ["Subscription", "Transport", "open_transport"]


def open_transport(config: ConnectorConfig) -> Transport:
    """The transport `config` names (not started): Kafka when ``kafka`` is set, else the server."""
    if config.kafka:
        return KafkaTransport(config.kafka, dict(config.kafka_config))
    token = config.token.get_secret_value() if config.token is not None else None
    return NativeTransport(config.url, token)
