"""Each example in examples/ runs as its own process against a real gateway, bounded in time."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from streamport import AutoOffsetReset, EventData, StreamingClient
from streamport.client import StreamConsumer
from tests.client.conftest import ThreadGateway
from tests.client.test_streaming_client import wait_for
from tests.services.ports import free_port

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, gateway: ThreadGateway, **env: str) -> subprocess.Popen[str]:
    full = {
        **os.environ,
        "STREAMPORT_URL": gateway.url,
        "STREAMPORT_TOKEN": gateway.token,
        **env,
    }
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name)],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def read_events(gateway: ThreadGateway, topic: str, count: int) -> list[EventData]:
    events: list[EventData] = []
    with StreamingClient(gateway.url, gateway.token) as client:
        consumer = client.get_topic_consumer(topic, auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_stream_received = lambda s: setattr(
            s.events, "on_data_received", lambda _, e: events.append(e)
        )
        consumer.subscribe()
        wait_for(lambda: len(events) >= count, timeout=60)
    return events


@pytest.fixture
def rest_api() -> Iterator[str]:
    """A local JSON API: each GET answers {"price": n} with n = 1, 2, 3, ..."""
    calls = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls["n"] += 1
            body = json.dumps({"price": calls["n"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/quote"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_rest_polling_example(sdk_gateway: ThreadGateway, rest_api: str) -> None:
    topic = f"poll-{uuid.uuid4().hex[:8]}"
    proc = run_example(
        "rest_polling.py",
        sdk_gateway,
        output=topic,
        url=rest_api,
        field="price",
        interval="0.2",
        max_polls="3",
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    events = read_events(sdk_gateway, topic, 3)
    assert [(e.id, e.value) for e in events] == [("price", "1"), ("price", "2"), ("price", "3")]


def test_segment_webhook_example(sdk_gateway: ThreadGateway) -> None:
    topic = f"segment-{uuid.uuid4().hex[:8]}"
    port = free_port()
    secret = "s3cret"
    proc = run_example(
        "segment_webhook.py", sdk_gateway, output=topic, shared_secret=secret, port=str(port)
    )
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        deadline = time.monotonic() + 60
        body = json.dumps({"type": "track", "event": "Signed Up", "userId": "u1"}).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        while True:
            try:
                bad = httpx.post(url, content=body, headers={"x-signature": "0" * 40})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None, stop(proc)
                time.sleep(0.1)
        assert bad.status_code == 401
        good = httpx.post(
            url,
            content=body,
            headers={"x-signature": signature, "Content-Type": "application/json"},
        )
        assert good.status_code == 200, good.text
        (event,) = read_events(sdk_gateway, topic, 1)
        assert event.id == "track"
        assert json.loads(event.value) == {"type": "track", "event": "Signed Up", "userId": "u1"}
    finally:
        stop(proc)


def test_rolling_average_example(sdk_gateway: ThreadGateway) -> None:
    source = f"speed-{uuid.uuid4().hex[:8]}"
    target = f"avg-{uuid.uuid4().hex[:8]}"
    proc = run_example("rolling_average.py", sdk_gateway, input=source, output=target, window="3")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", stop(proc)
        frames: list[pd.DataFrame] = []
        with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
            consumer = client.get_topic_consumer(target, auto_offset_reset=AutoOffsetReset.Earliest)

            def on_stream(stream: StreamConsumer) -> None:
                stream.timeseries.on_dataframe_received = lambda _, df: frames.append(df)

            consumer.on_stream_received = on_stream
            consumer.subscribe()
            with client.get_topic_producer(source) as producer:
                stream = producer.create_stream("car")
                stream.timeseries.publish(
                    pd.DataFrame({"timestamp": [1, 2, 3], "speed": [3.0, 6.0, 9.0]})
                )
                stream.timeseries.publish(pd.DataFrame({"timestamp": [4], "speed": [12.0]}))
            wait_for(lambda: sum(len(f) for f in frames) >= 4, timeout=60)
        rows = pd.concat(frames)
        assert list(rows["timestamp"]) == [1, 2, 3, 4]
        assert list(rows["speed_avg"]) == [3.0, 4.5, 6.0, 9.0]
    finally:
        _, err = stop(proc)
    assert proc.returncode == 0, err  # SIGTERM: App.run shut down cleanly
