"""schemathesis against the live server's /openapi.json: no 5xx, every response conforms.

schemathesis calls the server with blocking requests, so this server runs in a thread with its
own event loop (unlike the async fixtures of conftest.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from streamport.broker.embedded import EmbeddedBroker
from streamport.gateway.app import create_app
from streamport.gateway.auth import TokenStore
from streamport.settings import Settings
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


class ThreadedServer:
    def __init__(self, data_dir: Path) -> None:
        settings_ = Settings(data_dir=data_dir, max_body_bytes=64 * 1024)
        self.tokens = TokenStore(data_dir)
        self.token = self.tokens.create("schemathesis", ["admin"])
        app = create_app(settings_, EmbeddedBroker(data_dir / "log"), tokens=self.tokens)
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        for _ in range(3000):
            if self.server.started:
                return self
            self.thread.join(0.01)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    with ThreadedServer(tmp_path_factory.mktemp("openapi")) as server:
        yield server


def test_writer_api_conforms(live: ThreadedServer) -> None:
    # schemathesis' pytest plugin does not run on pytest 9 yet, so each operation's strategy is
    # driven by hypothesis directly; the checks are the same (no 5xx, responses match the schema).
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{live.port}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    headers = {"Authorization": f"Bearer {live.token}"}
    # JSON Schema counts 1.0 as an integer; the API refuses it for timestamps on purpose (floats
    # lose nanoseconds), so "schema-valid data is accepted" is not one of the checks.
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        check()


def test_docs_page_is_served(live: ThreadedServer) -> None:
    base = f"http://127.0.0.1:{live.port}"
    page = httpx.get(base + "/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    bundle = httpx.get(base + "/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    document = httpx.get(base + "/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert "/writer/topics/{topic}/streams/{stream_id}/parameters/data" in document["paths"]
