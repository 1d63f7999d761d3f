from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import RunningServer, running_server


@pytest.fixture(scope="module")
def hub_server() -> Iterator[RunningServer]:
    """One real server (default options) shared by a module's tests; /hub open, /authhub needs a token."""
    with running_server() as server:
        yield server
