from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamport.broker.base import Broker
from tests.broker.backends import BACKENDS, MARKS


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, ())) for name in sorted(BACKENDS)])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    async with BACKENDS[request.param](tmp_path) as started:
        yield started


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses (backends may be shared between tests)."""
    return f"t-{uuid.uuid4().hex[:16]}"
