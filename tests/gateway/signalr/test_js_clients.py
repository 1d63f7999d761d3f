"""The official @microsoft/signalr client under Node 20: every transport x JSON / MessagePack."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .node import JS_DIR, NodeClient, run_node
from .support import GOOD_TOKEN, RunningServer, running_server

pytestmark = pytest.mark.integration

MATRIX = [
    ("WebSockets", "json"),
    ("WebSockets", "messagepack"),
    ("ServerSentEvents", "json"),
    ("LongPolling", "json"),
    ("LongPolling", "messagepack"),
]


@pytest.mark.parametrize(("transport", "protocol"), MATRIX)
def test_invoke_send_push_errors_streams(
    hub_server: RunningServer, transport: str, protocol: str
) -> None:
    r = run_node(
        {
            "url": hub_server.url("/hub"),
            "transport": transport,
            "protocol": protocol,
            "scenario": "basic",
        }
    )
    assert r["echo"] == {"ok": {"text": "héllo", "n": [1, 2.5, None]}}
    assert r["echoCase"] == {"ok": "any case"}
    assert r["add"] == {"ok": 42}
    assert r["points"] == {"ok": {"x": 11, "y": 22}}
    assert r["hubError"] == {
        "error": "An unexpected error occurred invoking 'ThrowHubError' on the server. "
        "HubException: Something bad"
    }
    # not a HubError: the detail ("a secret detail") stays on the server
    assert r["other"] == {
        "error": "An unexpected error occurred invoking 'ThrowOther' on the server."
    }
    assert r["unknown"] == {"error": "Unknown hub method 'NoSuchMethod'"}
    assert r["badCount"] == {"error": "Failed to invoke 'Add' due to an error on the server."}
    assert r["badType"] == {"error": "Failed to invoke 'Add' due to an error on the server."}
    assert r["voidResult"] == {}  # resolved with undefined
    assert r["transport"] == {"ok": transport}
    assert r["push"] == ["via send"]
    assert r["sendUnknown"] == {}  # send() of an unknown method: no reply, the connection lives on
    assert r["afterSend"] == {"ok": "still alive"}
    assert r["stream"] == {"items": [0, 1, 2, 3]}
    assert r["streamError"] == {
        "items": [1],
        "error": "An error occurred on the server while streaming results. HubException: stream broke",
    }
    assert r["upload"] == {"ok": "abc"}
    assert r["closedWith"] is None  # stop() is a clean close
    assert len(r["connectionId"]) == 22


@pytest.mark.parametrize(("transport", "protocol"), MATRIX)
def test_client_results(hub_server: RunningServer, transport: str, protocol: str) -> None:
    """A hub method awaits `Context.invoke`: the client's handler answers (§12)."""
    r = run_node(
        {
            "url": hub_server.url("/hub"),
            "transport": transport,
            "protocol": protocol,
            "scenario": "clientResults",
        }
    )
    failed = "An unexpected error occurred invoking 'AskClient' on the server. HubException: "
    assert r["add"] == {"ok": 5}
    assert r["later"] == {"ok": 42}
    assert r["fail"] == {"error": failed + "client error: Error: nope"}
    assert r["missing"] == {"error": failed + "client error: Client didn't provide a result."}
    assert r["badType"]["error"].startswith(failed + "client error: Error binding the client's")
    assert r["after"] == {"ok": "still alive"}


@pytest.mark.parametrize("transport", ["WebSockets", "ServerSentEvents", "LongPolling"])
def test_token_reaches_the_hub_as_principal(hub_server: RunningServer, transport: str) -> None:
    r = run_node(
        {
            "url": hub_server.url("/authhub"),
            "transport": transport,
            "protocol": "json",
            "token": GOOD_TOKEN,
            "scenario": "basic",
        }
    )
    assert r["principal"] == {"ok": {"user": "tester"}}
    assert r["echo"] == {"ok": {"text": "héllo", "n": [1, 2.5, None]}}


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_negotiate_401_without_a_valid_token(hub_server: RunningServer, token: str | None) -> None:
    config: dict[str, Any] = {
        "url": hub_server.url("/authhub"),
        "transport": "WebSockets",
        "protocol": "json",
        "scenario": "failStart",
    }
    if token:
        config["token"] = token
    r = run_node(config)
    assert r["start"] == {
        "error": "Failed to complete negotiation with the server: Error: Unauthorized: Status code '401'"
    }


def test_abort_closes_without_reconnect(hub_server: RunningServer) -> None:
    r = run_node(
        {
            "url": hub_server.url("/hub"),
            "transport": "WebSockets",
            "protocol": "json",
            "scenario": "abort",
            "reconnect": True,
        }
    )
    assert r["state"] == "Disconnected"
    assert "reconnecting" not in r  # no allowReconnect: automatic reconnect must not start


@pytest.mark.parametrize(
    ("transport", "protocol"),
    [("WebSockets", "json"), ("ServerSentEvents", "json"), ("LongPolling", "messagepack")],
)
def test_automatic_reconnect_after_server_restart(transport: str, protocol: str) -> None:
    with running_server() as server:
        config = {
            "url": server.url("/hub"),
            "transport": transport,
            "protocol": protocol,
            "scenario": "reconnect",
            "reconnect": True,
        }
        with NodeClient(config) as client:
            client.wait_for("ready")
            server.stop()
            server.start()  # same port, brand-new server: the old connection id is unknown there
            r = client.result()
    assert r["before"] == {"ok": "before"}
    assert r["after"] == {"ok": "after"}
    assert r["reconnected"] == r["secondId"]
    assert r["secondId"] != r["firstId"]


def test_node_harness_is_installed() -> None:
    """The npm packages come from tests/js/package-lock.json (scripts/provision.d/20-node.sh)."""
    out = subprocess.run(
        [
            "node",
            "-e",
            "console.log(JSON.stringify(require('@microsoft/signalr/package.json').version))",
        ],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout).split(".")[0] in {"9", "10"}
