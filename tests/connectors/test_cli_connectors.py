"""`streamport connectors` and `streamport webhooks` as real commands against `streamport up`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import STREAMPORT, Server, run_cli, start_server
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = start_server(tmp_path / "data")
    yield started
    started.stop()


def env_for(server: Server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPORT_")}
    env["STREAMPORT_URL"] = server.url
    if server.token:
        env["STREAMPORT_TOKEN"] = server.token
    env.update(extra)
    return env


def run(server: Server, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STREAMPORT, *args],
        capture_output=True,
        text=True,
        env=env_for(server, **extra),
        timeout=120,
        check=False,
    )


def consume(server: Server, topic: str, count: int) -> list[dict[str, object]]:
    done = run_cli("consume", topic, "--from-beginning", "--count", str(count), server=server)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_list_shows_one_line_per_connector() -> None:
    done = run_cli("connectors", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    names = [line.split()[0] for line in lines]
    for name in ("rest-source", "webhook-source", "file-source", "file-destination"):
        assert name in names
    for name in ("http-destination", "slack-destination", "twilio-destination"):
        assert name in names
    rest = next(line for line in lines if line.startswith("rest-source"))
    assert "source" in rest and "poll" in rest


def test_describe_shows_types_defaults_and_secrets() -> None:
    done = run_cli("connectors", "describe", "rest-source")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "bearer_token: SecretStr | null  [default: none, secret]" in out
    assert "interval: float  [default: 60.0]" in out
    assert "request_url: str  [required]" in out
    assert "output_topic: str  [required]" in out
    unknown = run_cli("connectors", "describe", "nope")
    assert unknown.returncode == 1
    assert "unknown connector 'nope'" in unknown.stderr


def test_run_file_source_then_file_destination(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": i, "kind": "k"}) + "\n" for i in range(4)))
    config = tmp_path / "source.yaml"
    config.write_text(f"connector: file-source\npath: {data}\nformat: messages\noutput_topic: x\n")
    # The environment wins over the file.
    done = run(
        server,
        "connectors",
        "run",
        "file-source",
        "--config",
        str(config),
        "--timeout",
        "60",
        STREAMPORT_CONNECTOR_OUTPUT_TOPIC="rows",
    )
    assert done.returncode == 0, done.stderr
    assert "4 out" in done.stdout
    values = [r["value"] for r in consume(server, "rows", 4)]
    assert values == [{"id": i, "kind": "k"} for i in range(4)]

    out_dir = tmp_path / "out"
    dest = tmp_path / "dest.yaml"
    dest.write_text(f"input_topic: rows\ndirectory: {out_dir}\nfile_format: jsonl\n")
    done = run(
        server, "connectors", "run", "file-destination", "--config", str(dest), "--count", "4"
    )
    assert done.returncode == 0, done.stderr
    assert "4 records in, 4 out, 0 dead letters" in done.stdout
    lines = [
        json.loads(line)
        for f in sorted(out_dir.glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert lines == [{"id": i, "kind": "k"} for i in range(4)]


def test_run_reports_bad_settings_without_the_secret(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "output_topic: x\nrequest_url: http://127.0.0.1:1/\ninterval: -1\nbearer_token: hush\n"
    )
    done = run_cli("connectors", "run", "rest-source", "--config", str(config))
    assert done.returncode == 1
    assert "interval" in done.stderr
    assert "hush" not in done.stderr + done.stdout


def test_run_serves_metrics_and_stops_on_sigterm(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "dest.yaml"
    config.write_text(f"input_topic: idle\ndirectory: {tmp_path / 'o'}\n")
    port = free_port()
    process = subprocess.Popen(
        [
            *STREAMPORT,
            "connectors",
            "run",
            "file-destination",
            "--config",
            str(config),
            "--metrics-port",
            str(port),
            "--timeout",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(server),
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                if "streamport_connector_lag" in text:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert 'streamport_connector_lag{connector="file-destination"}' in text
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "file-destination: 0 records in" in out


def test_webhooks_add_list_remove_and_deliver(server: Server) -> None:
    added = run_cli(
        "webhooks",
        "add",
        "shop",
        "--topic",
        "orders",
        "--verify",
        "segment",
        "--secret",
        "shh-secret",
        server=server,
    )
    assert added.returncode == 0, added.stderr
    assert f"POST {server.url}/webhooks/shop -> topic orders" in added.stdout
    assert "shh-secret" not in added.stdout + added.stderr
    listed = run_cli("webhooks", "list", server=server)
    assert listed.stdout.split() == ["shop", "orders", "segment", "/webhooks/shop"]
    body = b'{"type":"track","messageId":"m1"}'
    signature = hmac.new(b"shh-secret", body, hashlib.sha1).hexdigest()
    reply = httpx.post(
        server.url + "/webhooks/shop",
        content=body,
        headers={"x-signature": signature, "content-type": "application/json"},
    )
    assert reply.status_code == 200
    records = consume(server, "orders", 2)
    assert len(records) == 2
    removed = run_cli("webhooks", "remove", "shop", server=server)
    assert removed.returncode == 0
    assert run_cli("webhooks", "list", server=server).stdout == ""
    gone = httpx.post(
        server.url + "/webhooks/shop", content=body, headers={"x-signature": signature}
    )
    assert gone.status_code == 404
    assert "shh-secret" not in "".join(server.output)
