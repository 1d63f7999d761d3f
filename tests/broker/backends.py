"""The broker backends the contract suite runs against, by name.

Each factory gets a fresh temporary directory and returns an async context manager that yields
a started broker and closes it on exit. A Kafka entry belongs here too (it may ignore the path).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from streamport.broker.base import Broker
from streamport.broker.embedded import EmbeddedBroker


def embedded(path: Path) -> AbstractAsyncContextManager[Broker]:
    return EmbeddedBroker(path / "embedded-data")


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Broker]]] = {
    "embedded": embedded,
}
