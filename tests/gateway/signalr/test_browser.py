"""Headless Chromium: a page from another origin connects to the hub with a token (CORS proof)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Route

from tests.services.ports import free_port

from .node import JS_DIR
from .support import GOOD_TOKEN, RunningServer, running_server

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
BUNDLE = JS_DIR / "node_modules" / "@microsoft" / "signalr" / "dist" / "browser" / "signalr.js"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="/signalr.js"></script></head>
<body><pre id="result"></pre>
<script>
(async () => {
  const out = {};
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(%(hub)s, {
      transport: signalR.HttpTransportType[%(transport)s],
      accessTokenFactory: () => %(token)s,
    })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  try {
    await connection.start();
    out.echo = await connection.invoke("Echo", "from the browser");
    out.principal = await connection.invoke("GetPrincipal");
    out.transport = await connection.invoke("GetTransport");
    await connection.stop();
  } catch (err) {
    out.error = String(err && err.message ? err.message : err);
  }
  const el = document.getElementById("result");
  el.textContent = JSON.stringify(out);
  el.setAttribute("data-done", "1");
})();
</script></body></html>
"""


@contextmanager
def page_server(hub_url: str, token: str) -> Iterator[str]:
    """A second origin (another port) serving the test page and the SignalR browser bundle."""

    async def index(request: Request) -> HTMLResponse:
        transport = request.query_params.get("transport", "WebSockets")
        return HTMLResponse(
            PAGE
            % {
                "hub": json.dumps(hub_url),
                "transport": json.dumps(transport),
                "token": json.dumps(token),
            }
        )

    async def bundle(request: Request) -> FileResponse:
        return FileResponse(BUNDLE, media_type="text/javascript")

    app = Starlette(routes=[Route("/", index), Route("/signalr.js", bundle)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "page server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(20)


def open_page(url: str) -> dict[str, object]:
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run scripts/provision.d/15-chromium.sh"
    assert BUNDLE.exists(), "no SignalR browser bundle: run scripts/provision.d/20-node.sh"
    out = subprocess.run(
        ["node", str(JS_DIR / "browser.mjs"), url],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("transport", ["WebSockets", "ServerSentEvents", "LongPolling"])
def test_cross_origin_page_invokes_echo_with_a_token(
    hub_server: RunningServer, transport: str
) -> None:
    with page_server(hub_server.url("/authhub"), GOOD_TOKEN) as page:
        assert page.split(":")[2] != str(hub_server.port)  # a different origin
        seen = open_page(f"{page}?transport={transport}")
    assert seen["result"] == {
        "echo": "from the browser",
        "principal": {"user": "tester"},
        "transport": transport,
    }, seen


def test_cross_origin_page_with_a_rejected_token_fails(hub_server: RunningServer) -> None:
    with page_server(hub_server.url("/authhub"), "not-the-token") as page:
        seen = open_page(page)
    result = seen["result"]
    assert isinstance(result, dict)
    assert "Status code '401'" in result["error"]


def test_origin_not_allowed_is_blocked_by_the_browser() -> None:
    with (
        running_server(allow_origin=lambda origin: origin == "https://elsewhere.example") as server,
        page_server(server.url("/authhub"), GOOD_TOKEN) as page,
    ):
        seen = open_page(page)
    result = seen["result"]
    assert isinstance(result, dict)
    assert "echo" not in result
    assert "Failed to complete negotiation" in result["error"]
