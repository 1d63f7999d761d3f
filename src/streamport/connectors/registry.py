"""The catalogue: connector name -> ``module:Class``, imported only when used, so a connector whose
optional dependency is missing does not break the others.

To add a connector, add one line to `CATALOGUE` (keep it sorted by name).
"""

from __future__ import annotations

import importlib
from typing import Any

from streamport.connectors.base import Connector
from streamport.errors import ConfigError

CATALOGUE: dict[str, str] = {
    "file-destination": "streamport.connectors.file:FileDestination",
    "file-source": "streamport.connectors.file:FileSource",
    "http-destination": "streamport.connectors.http:HttpDestination",
    "kafka-destination": "streamport.connectors.kafka:KafkaDestination",
    "kafka-source": "streamport.connectors.kafka:KafkaSource",
    "mqtt-destination": "streamport.connectors.mqtt:MqttDestination",
    "mqtt-source": "streamport.connectors.mqtt:MqttSource",
    "postgres-destination": "streamport.connectors.postgres:PostgresDestination",
    "postgres-source": "streamport.connectors.postgres:PostgresSource",
    "redis-destination": "streamport.connectors.redis:RedisDestination",
    "rest-source": "streamport.connectors.rest:RestSource",
    "slack-destination": "streamport.connectors.slack:SlackDestination",
    "twilio-destination": "streamport.connectors.twilio:TwilioDestination",
    "webhook-source": "streamport.connectors.webhook:WebhookSource",
}


def names() -> list[str]:
    return sorted(CATALOGUE)


def load(name: str) -> type[Connector[Any]]:
    """The connector class called `name`; ConfigError when unknown or not importable."""
    target = CATALOGUE.get(name)
    if target is None:
        raise ConfigError(
            f"unknown connector {name!r}: `streamport connectors list` shows the catalogue"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"connector {name!r} cannot be loaded: {exc}") from exc
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"{target} is not a connector class")
    return cls
