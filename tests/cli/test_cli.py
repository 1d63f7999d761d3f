from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import msgspec
import pytest

from streamport._version import __version__
from tests.cli.conftest import Server, run_cli, start_server

pytestmark = pytest.mark.integration


def test_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"streamport {__version__}"


def test_up_prints_urls_and_a_first_admin_token_once(server: Server, tmp_path: Path) -> None:
    text = "".join(server.output)
    for path in ("/writer", "/writer/hub", "/reader/hub", "/api", "/metrics", "/healthz"):
        assert f"{server.url}{path}\n" in text
    assert server.token is not None and server.token.startswith("sp_")
    server.stop()
    again = start_server(tmp_path / "data")
    try:
        assert again.token is None  # the data dir has a token already: not printed again
    finally:
        again.stop()


def test_topics_commands(server: Server) -> None:
    created = run_cli("topics", "create", "cars", "--partitions", "3", server=server)
    assert created.returncode == 0, created.stderr
    listed = run_cli("topics", "list", server=server)
    assert "cars\tpartitions=3" in listed.stdout
    described = run_cli("topics", "describe", "cars", server=server)
    assert msgspec.json.decode(described.stdout)["partitions"] == 3
    bad = run_cli("topics", "create", "bad name", server=server)
    assert bad.returncode == 1
    assert "invalid topic name" in bad.stderr and "(field: topic)" in bad.stderr
    assert run_cli("topics", "delete", "cars", server=server).returncode == 0
    unknown = run_cli("topics", "describe", "cars", server=server)
    assert unknown.returncode == 1 and "404" in unknown.stderr


def test_produce_reports_bad_lines_and_writes_the_rest(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"key": "a", "value": {"x": 1}}\n{broken\n\n42\n"text"\n[1,\n')
    result = run_cli("produce", "lines", "--file", str(source), server=server)
    assert result.returncode == 1
    assert "line 2: malformed JSON" in result.stderr
    assert "line 6: malformed JSON" in result.stderr
    assert "wrote 3 record(s)" in result.stdout
    consumed = run_cli("consume", "lines", "--from-beginning", "--count", "3", server=server)
    assert consumed.returncode == 0, consumed.stderr
    records = [msgspec.json.decode(line) for line in consumed.stdout.splitlines()]
    assert [r["value"] for r in records] == [{"x": 1}, 42, "text"]
    assert [r["offset"] for r in records] == [0, 1, 2]
    assert records[0]["key"] == "a"
    assert set(records[0]) >= {"topic", "partition", "offset", "key", "timestamp", "value"}


def test_produce_from_stdin_and_consume_in_a_group(server: Server) -> None:
    assert (
        run_cli("produce", "g", stdin='{"value": 1}\n{"value": 2}\n', server=server).returncode == 0
    )
    first = run_cli(
        "consume", "g", "--group", "G", "--from-beginning", "--count", "2", server=server
    )
    assert [msgspec.json.decode(x)["value"] for x in first.stdout.splitlines()] == [1, 2]
    run_cli("produce", "g", stdin="3\n", server=server)
    second = run_cli("consume", "g", "--group", "G", "--count", "1", server=server)
    assert [msgspec.json.decode(x)["value"] for x in second.stdout.splitlines()] == [3]


def test_tokens_offline_and_online(server: Server, tmp_path: Path) -> None:
    offline = run_cli("tokens", "create", "--name", "ops", "--data-dir", str(tmp_path / "data"))
    assert offline.returncode == 0, offline.stderr
    ops_token = offline.stdout.strip().splitlines()[-1]
    assert ops_token.startswith("sp_")
    # The running server accepts a token created offline on its data directory.
    listed = run_cli("tokens", "list", "--token", ops_token, "--url", server.url)
    assert "ops\tadmin" in listed.stdout
    reader = run_cli("tokens", "create", "--name", "r", "--scope", "read:cars", server=server)
    read_token = reader.stdout.strip().splitlines()[-1]
    denied = run_cli("topics", "list", "--token", read_token, "--url", server.url)
    assert denied.returncode == 1 and "403" in denied.stderr
    assert run_cli("tokens", "revoke", "r", server=server).returncode == 0
    revoked = run_cli("topics", "list", "--token", read_token, "--url", server.url)
    assert "401" in revoked.stderr


def test_missing_token_gives_a_hint(server: Server) -> None:
    result = run_cli("topics", "list", "--url", server.url)
    assert result.returncode == 1
    assert "401" in result.stderr and "STREAMPORT_TOKEN" in result.stderr


def test_unreachable_server_is_a_clear_error() -> None:
    result = run_cli("topics", "list", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "cannot reach streamport" in result.stderr


def test_foreign_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("up", "--data-dir", str(tmp_path), "--port", "0")
    assert result.returncode == 1
    assert "is not a streamport data directory" in result.stderr


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    result = run_cli("up", "--data-dir", str(tmp_path / "d"), "--host", "0.0.0.0", "--no-auth")
    assert result.returncode == 1
    assert "loopback" in result.stderr


def test_a_data_dir_with_webhooks_restarts(server: Server, tmp_path: Path) -> None:
    # Regression: webhooks.json and webhook-ids/ once made the data directory look foreign.
    added = run_cli(
        "webhooks",
        "add",
        "shop",
        "--topic",
        "orders",
        "--verify",
        "segment",
        "--secret",
        "s3cret",
        server=server,
    )
    assert added.returncode == 0, added.stderr
    body = b'{"type": "order"}'
    signature = hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    delivered = httpx.post(
        server.url + "/webhooks/shop",
        content=body,
        headers={"Content-Type": "application/json", "x-signature": signature},
    )
    assert delivered.status_code < 300, delivered.text
    server.stop()
    again = start_server(tmp_path / "data")
    try:
        assert (
            "shop"
            in run_cli("webhooks", "list", "--url", again.url, "--token", server.token or "").stdout
        )
    finally:
        again.stop()
