"""Inbound webhooks through a live gateway: each provider's signature, replays, tampering, limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamport.model import EventData, StreamProperties, decode
from streamport.webhooks import SeenIds
from tests.gateway.conftest import Gateway, run_gateway

pytestmark = pytest.mark.integration


async def add(gw: Gateway, **spec: Any) -> dict[str, Any]:
    async with gw.client() as client:
        response = await client.post("/api/webhooks", json=spec)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def events(gw: Gateway, topic: str, count: int) -> list[EventData]:
    records = await gw.read(topic, count + 1)
    messages = [decode(r.value, r.headers) for r in records]
    assert isinstance(messages[0], StreamProperties)
    out = [m for m in messages[1:] if isinstance(m, EventData)]
    assert len(out) == count
    return out


async def no_more(gw: Gateway, topic: str, count: int) -> None:
    """The topic holds exactly `count` records (properties + events)."""
    marks = await gw.broker.watermarks(topic)
    assert sum(m.high for m in marks) == count


def post(gw: Gateway, name: str, body: bytes, headers: dict[str, str]) -> Any:
    client = httpx.AsyncClient(base_url=gw.url, timeout=30)

    async def send() -> httpx.Response:
        async with client:
            return await client.post(
                f"/webhooks/{name}",
                content=body,
                headers={"content-type": "application/json", **headers},
            )

    return send()


def hexmac(secret: bytes, algorithm: str, message: bytes) -> str:
    return hmac.new(secret, message, getattr(hashlib, algorithm)).hexdigest()


async def test_segment_signed_delivery_becomes_an_event_and_tampering_is_refused(
    gateway: Gateway,
) -> None:
    await add(gateway, name="seg", topic="segment-events", verify="segment", secret="s3cret")
    body = json.dumps({"type": "track", "event": "Signed Up", "messageId": "m-1"}).encode()
    signature = hexmac(b"s3cret", "sha1", body)
    ok = await post(gateway, "seg", body, {"x-signature": signature})
    assert ok.status_code == 200, ok.text
    tampered = body.replace(b"Signed Up", b"Signed Off")
    bad = await post(gateway, "seg", tampered, {"x-signature": signature})
    assert bad.status_code == 401
    missing = await post(gateway, "seg", body, {})
    assert missing.status_code == 401
    (event,) = await events(gateway, "segment-events", 1)
    assert event.id == "track"
    assert json.loads(event.value) == json.loads(body)
    assert event.tags["deliveryId"] == "m-1"
    await no_more(gateway, "segment-events", 2)


async def test_github_replay_with_the_same_delivery_id_is_written_once(gateway: Gateway) -> None:
    await add(gateway, name="gh", topic="github", verify="github", secret="gh-secret")
    body = b'{"action":"opened","number":7}'
    headers = {
        "X-Hub-Signature-256": "sha256=" + hexmac(b"gh-secret", "sha256", body),
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "d-42",
    }
    first = await post(gateway, "gh", body, headers)
    assert first.json()["status"] == "written"
    replays = await asyncio.gather(*(post(gateway, "gh", body, headers) for _ in range(5)))
    assert [r.status_code for r in replays] == [200] * 5
    assert {r.json()["status"] for r in replays} == {"duplicate"}
    (event,) = await events(gateway, "github", 1)
    assert event.id == "issues"
    await no_more(gateway, "github", 2)
    wrong = dict(headers, **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert (await post(gateway, "gh", body, wrong)).status_code == 401


async def test_concurrent_first_deliveries_are_written_once(gateway: Gateway) -> None:
    await add(gateway, name="gh2", topic="github2", verify="github", secret="k")
    body = b'{"zen":"hi"}'
    headers = {
        "X-Hub-Signature-256": "sha256=" + hexmac(b"k", "sha256", body),
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "same",
    }
    replies = await asyncio.gather(*(post(gateway, "gh2", body, headers) for _ in range(8)))
    assert sorted(r.json()["status"] for r in replies) == ["duplicate"] * 7 + ["written"]
    await no_more(gateway, "github2", 2)


def stripe_header(secret: str, body: bytes, stamp: int) -> str:
    signature = hexmac(secret.encode(), "sha256", f"{stamp}.".encode() + body)
    return f"t={stamp},v1={'f' * 64},v1={signature}"


async def test_stripe_signature_with_timestamp_tolerance(gateway: Gateway) -> None:
    secret = "whsec_test_stripe"
    await add(gateway, name="stripe", topic="payments", verify="stripe", secret=secret)
    body = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"}).encode()
    now = int(time.time())
    ok = await post(gateway, "stripe", body, {"Stripe-Signature": stripe_header(secret, body, now)})
    assert ok.status_code == 200, ok.text
    stale = stripe_header(secret, body, now - 3600)
    assert (await post(gateway, "stripe", body, {"Stripe-Signature": stale})).status_code == 401
    # The same event again (Stripe retries with a fresh signature): written once.
    again = stripe_header(secret, body, now + 1)
    assert (await post(gateway, "stripe", body, {"Stripe-Signature": again})).json()[
        "status"
    ] == "duplicate"
    (event,) = await events(gateway, "payments", 1)
    assert event.id == "payment_intent.succeeded"


def standard_headers(key: bytes, msg_id: str, stamp: int, body: bytes) -> dict[str, str]:
    content = f"{msg_id}.{stamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": f"v1,{base64.b64encode(b'x' * 32).decode()} v1,{signature}",
    }


async def test_standard_webhooks_verify_replay_and_tolerance(gateway: Gateway) -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    await add(gateway, name="std", topic="std", verify="standard", secret=secret, tolerance=60)
    body = b'{"type":"invoice.paid","data":{"n":1}}'
    now = int(time.time())
    headers = standard_headers(key, "msg_1", now, body)
    assert (await post(gateway, "std", body, headers)).json()["status"] == "written"
    assert (await post(gateway, "std", body, headers)).json()["status"] == "duplicate"
    old = standard_headers(key, "msg_2", now - 120, body)
    assert (await post(gateway, "std", body, old)).status_code == 401
    wrong_key = standard_headers(b"k" * 32, "msg_3", now, body)
    assert (await post(gateway, "std", body, wrong_key)).status_code == 401
    tampered = await post(gateway, "std", body.replace(b"1", b"2"), headers)
    assert tampered.status_code == 401
    (event,) = await events(gateway, "std", 1)
    assert event.id == "invoice.paid"
    await no_more(gateway, "std", 2)


async def test_generic_hmac_base64_sha512_with_prefix(gateway: Gateway) -> None:
    await add(
        gateway,
        name="gen",
        topic="generic",
        verify="hmac",
        secret="g",
        algorithm="sha512",
        header="X-Custom-Sig",
        encoding="base64",
        prefix="sig=",
        eventTypeField="kind.name",
    )
    body = b'{"kind":{"name":"door.opened"}}'
    digest = hmac.new(b"g", body, hashlib.sha512).digest()
    good = {"X-Custom-Sig": "sig=" + base64.b64encode(digest).decode()}
    assert (await post(gateway, "gen", body, good)).status_code == 200
    hex_form = {"X-Custom-Sig": "sig=" + digest.hex()}
    assert (await post(gateway, "gen", body, hex_form)).status_code == 401
    (event,) = await events(gateway, "generic", 1)
    assert event.id == "door.opened"


async def test_body_limit_unknown_webhook_and_invalid_json(gateway: Gateway) -> None:
    await add(gateway, name="small", topic="small", verify="segment", secret="s", maxBodyBytes=64)
    big = b'{"type":"x","pad":"' + b"a" * 100 + b'"}'
    reply = await post(gateway, "small", big, {"x-signature": hexmac(b"s", "sha1", big)})
    assert reply.status_code == 413
    assert (await post(gateway, "nope", b"{}", {})).status_code == 404
    not_json = b"not json"
    reply = await post(gateway, "small", not_json, {"x-signature": hexmac(b"s", "sha1", not_json)})
    assert reply.status_code == 400


async def test_admin_api_hides_secrets_stores_them_0600_and_removes(gateway: Gateway) -> None:
    await add(gateway, name="a", topic="t", verify="github", secret="very-secret-value")
    async with gateway.client() as client:
        listed = await client.get("/api/webhooks")
        assert listed.status_code == 200
        assert [w["name"] for w in listed.json()] == ["a"]
        assert "very-secret-value" not in listed.text
        assert listed.json()[0]["path"] == "/webhooks/a"
        duplicate = await client.post(
            "/api/webhooks", json={"name": "a", "topic": "t", "verify": "github", "secret": "x"}
        )
        assert duplicate.status_code == 400
        invalid = await client.post(
            "/api/webhooks", json={"name": "b", "topic": "t", "verify": "magic", "secret": "x"}
        )
        assert invalid.status_code == 400
        assert invalid.json()["error"]["field"] == "verify"
        async with gateway.client(token=None) as nobody:
            assert (await nobody.get("/api/webhooks")).status_code == 401
        mode = stat.S_IMODE((gateway.settings.data_dir / "webhooks.json").stat().st_mode)
        assert mode == 0o600
        assert (await client.delete("/api/webhooks/a")).status_code == 204
        assert (await client.delete("/api/webhooks/a")).status_code == 404
    body = b"{}"
    sig = {"X-Hub-Signature-256": "sha256=" + hexmac(b"very-secret-value", "sha256", body)}
    assert (await post(gateway, "a", body, sig)).status_code == 404


@pytest.mark.parametrize("verify", ["segment", "github", "stripe", "standard", "hmac"])
async def test_every_scheme_refuses_an_unsigned_request(gateway: Gateway, verify: str) -> None:
    await add(gateway, name=f"w-{verify}", topic="t", verify=verify, secret="whsec_c2VjcmV0")
    reply = await post(gateway, f"w-{verify}", b'{"type":"x"}', {})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "unauthenticated"


async def test_webhook_counts_on_the_gateway_metrics(gateway: Gateway) -> None:
    await add(gateway, name="m", topic="metered", verify="segment", secret="s")
    body = b'{"type":"page"}'
    assert (await post(gateway, "m", body, {"x-signature": hexmac(b"s", "sha1", body)})).is_success
    assert (await post(gateway, "m", body, {"x-signature": "00"})).status_code == 401
    async with gateway.client() as client:
        text = (await client.get("/metrics")).text
    assert 'streamport_connector_records_out_total{connector="webhook:m"} 1.0' in text
    assert (
        'streamport_connector_errors_total{connector="webhook:m",kind="unauthorized"} 1.0' in text
    )


async def test_replay_is_refused_after_a_gateway_restart(tmp_path: Path) -> None:
    data = tmp_path / "gw"
    body = b'{"action":"closed"}'
    headers = {
        "X-Hub-Signature-256": "sha256=" + hexmac(b"k", "sha256", body),
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "restart-1",
    }
    async with run_gateway(data) as first:
        await add(first, name="gh", topic="restarts", verify="github", secret="k")
        assert (await post(first, "gh", body, headers)).json()["status"] == "written"
    # run_gateway makes a fresh admin token each time; the webhook and its seen ids stay.
    (data / "tokens.json").unlink()
    async with run_gateway(data) as second:
        assert (await post(second, "gh", body, headers)).json()["status"] == "duplicate"
        await no_more(second, "restarts", 2)
        async with second.client() as client:
            assert (await client.delete("/api/webhooks/gh")).status_code == 204
        assert not (data / "webhook-ids" / "gh.ids").exists()


async def test_seen_ids_file_is_bounded_and_survives(tmp_path: Path) -> None:
    path = tmp_path / "ids" / "w.ids"
    seen = SeenIds(capacity=3, path=path)
    for n in range(10):
        assert await seen.claim(f"id-{n}")
        await seen.finish(f"id-{n}", written=n != 5)  # id-5's write failed
    assert len(path.read_text().splitlines()) <= 6
    again = SeenIds(capacity=3, path=path)
    assert not await again.claim("id-9")
    assert await again.claim("id-5")  # never written: may be written now
    assert await again.claim("id-0")  # forgotten: older than the capacity
