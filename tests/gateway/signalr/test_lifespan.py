"""Mounting and lifecycle, in process with Starlette's TestClient (no sockets)."""

from __future__ import annotations

import warnings

from starlette.applications import Starlette

with warnings.catch_warnings():
    # starlette 1.x asks for `httpx2` for its TestClient; plain httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from streamport.gateway.signalr import SignalRServer

from .support import TestHub

RS = "\x1e"


def _echo_over_websocket(client: TestClient, prefix: str) -> object:
    token = client.post(f"{prefix}/negotiate?negotiateVersion=1").json()["connectionToken"]
    with client.websocket_connect(f"{prefix}?id={token}") as ws:
        ws.send_text('{"protocol":"json","version":1}' + RS)
        assert ws.receive_text() == "{}" + RS
        ws.send_text('{"type":1,"invocationId":"1","target":"echo","arguments":[5]}' + RS)
        return ws.receive_text()


def test_mounted_with_the_starlette_lifespan() -> None:
    server = SignalRServer(TestHub)
    app = Starlette(routes=[server.route("/hubs/test")], lifespan=server.lifespan)
    with TestClient(app) as client:
        reply = _echo_over_websocket(client, "/hubs/test")
        # the bare path and the trailing-slash path are the hub, without a redirect
        assert client.post("/hubs/test", follow_redirects=False).text == "Connection ID required"
        assert client.post("/hubs/test/", follow_redirects=False).text == "Connection ID required"
    assert reply == '{"type":3,"invocationId":"1","result":5}' + RS


def test_standalone_app_runs_its_own_lifespan() -> None:
    server = SignalRServer(TestHub)
    with TestClient(server) as client:
        assert _echo_over_websocket(client, "") == '{"type":3,"invocationId":"1","result":5}' + RS
        assert client.get("/elsewhere").status_code == 404


def test_a_server_that_was_not_started_says_so() -> None:
    server = SignalRServer(TestHub)
    client = TestClient(server)  # no `with`: no lifespan, so the server never started
    token = client.post("/negotiate?negotiateVersion=1").json()["connectionToken"]
    response = client.get(f"/?id={token}")
    assert response.status_code == 503
    assert "not started" in response.text
