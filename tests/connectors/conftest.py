"""Connector tests run against a live streamport gateway (uvicorn in the test's loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import Gateway, run_gateway


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with run_gateway(tmp_path / "gw") as gw:
        yield gw


def platform(gw: Gateway) -> dict[str, Any]:
    """The settings that point a connector at `gw`."""
    return {"url": gw.url, "token": gw.token}
