from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamport.gateway.signalr import WebSocketProtocol

from .support import RunningServer, running_server

WS_PROTOCOLS = {"raw": WebSocketProtocol, "asgi": "auto"}
"""uvicorn WebSocket protocols the wire tests run on: ours (frames written straight to the socket,
as `streamport up` runs) and uvicorn's own (every frame through ASGI: any other server)."""


@pytest.fixture(scope="module", params=sorted(WS_PROTOCOLS))
def hub_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One real server (default options) shared by a module's tests; /hub open, /authhub needs a token."""
    with running_server(ws=WS_PROTOCOLS[request.param]) as server:
        yield server
