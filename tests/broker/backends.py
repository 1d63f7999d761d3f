"""The broker backends the contract suite runs against, by name.

Each factory gets a fresh temporary directory and returns an async context manager that yields
a started broker and closes it on exit. A Kafka entry belongs here too (it may ignore the path).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from streamport.broker.base import Broker
from streamport.broker.embedded import EmbeddedBroker
from streamport.broker.kafka import KafkaBroker
from tests.services.kafka import shared_kafka


def embedded(path: Path) -> AbstractAsyncContextManager[Broker]:
    return EmbeddedBroker(path / "embedded-data")


def kafka(path: Path) -> AbstractAsyncContextManager[Broker]:
    """A client of the test process's real Kafka broker (tests/services/kafka.py)."""
    return KafkaBroker(shared_kafka().bootstrap)


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Broker]]] = {
    "embedded": embedded,
    "kafka": kafka,
}

# Marks for the tests that run on a backend.
MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "kafka": (pytest.mark.kafka, pytest.mark.integration),
}
