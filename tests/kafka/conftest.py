"""Fixtures of the Kafka end-to-end tests (the broker itself comes from tests/services/kafka.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streamport.broker.kafka import KafkaBroker
from tests.cli.conftest import Server, start_server
from tests.gateway.conftest import Gateway, run_gateway


@pytest.fixture
def kafka_server(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Server]:
    """A real `streamport up --broker kafka://...` process (auth on, first admin token printed)."""
    server = start_server(tmp_path / "data", "--broker", f"kafka://{kafka_bootstrap}")
    yield server
    server.stop()


@pytest.fixture
async def kafka_gateway(tmp_path: Path, kafka_bootstrap: str) -> AsyncIterator[Gateway]:
    """A gateway in the test's loop (real uvicorn) on a KafkaBroker of the test broker."""
    async with run_gateway(tmp_path / "gw", broker=KafkaBroker(kafka_bootstrap)) as gateway:
        yield gateway
