"""HTTP, Slack and Twilio destinations through a live gateway, against local stand-in servers
that check method, path, auth and body."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from streamport.broker import Record
from streamport.connectors import Runner
from streamport.connectors.http import HttpConfig, HttpDestination
from streamport.connectors.slack import SlackConfig, SlackDestination
from streamport.connectors.twilio import TwilioConfig, TwilioDestination
from streamport.errors import ConfigError
from streamport.model import EventData, encode
from tests.connectors.conftest import platform
from tests.connectors.standin import stand_in
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


async def put(gw: Gateway, topic: str, records: list[Record]) -> None:
    await gw.broker.create_topic(topic)
    await gw.broker.produce(topic, records)


async def test_http_batches_retries_and_dead_letters_a_refused_record(gateway: Gateway) -> None:
    await put(gateway, "h", [Record(value=json.dumps({"n": n}).encode()) for n in range(5)])
    answers = [503, 429]

    async def ingest(request: Request, body: bytes) -> Response:
        assert request.headers["authorization"] == "Bearer hook-token"
        assert request.headers["content-type"] == "application/json"
        if answers:
            status = answers.pop(0)
            return Response(
                status_code=status, headers={"Retry-After": "0"} if status == 429 else {}
            )
        items = json.loads(body)
        if {"n": 3} in items:
            return JSONResponse({"error": "n=3 is not allowed"}, status_code=422)
        return JSONResponse({"accepted": len(items)})

    async with stand_in({("POST", "/ingest"): ingest}) as api:
        config = HttpConfig(
            input_topic="h",
            endpoint=api.url + "/ingest",
            bearer_token="hook-token",  # type: ignore[arg-type]
            max_batch=10,
            retry_initial=0.01,
            **platform(gateway),
        )
        result = await Runner(HttpDestination(config)).run(timeout=30, count=5)
    accepted = [json.loads(r.body) for r in api.requests if r.body and b"3" not in r.body]
    delivered = sorted(item["n"] for batch in accepted[-4:] for item in batch)
    assert delivered == [0, 1, 2, 4]
    assert all(r.method == "POST" and r.path == "/ingest" for r in api.requests)
    assert result.dead_letters == 1
    (dead,) = await gateway.read("h-dead-letter", 1)
    assert json.loads(dead.value) == {"n": 3}
    assert b"422" in dict(dead.headers)["x-error"]


async def test_http_destination_stops_on_bad_credentials(gateway: Gateway) -> None:
    await put(gateway, "h2", [Record(value=b"{}")])

    async def ingest(request: Request, body: bytes) -> Response:
        return Response(status_code=401)

    async with stand_in({("POST", "/ingest"): ingest}) as api:
        config = HttpConfig(input_topic="h2", endpoint=api.url + "/ingest", **platform(gateway))
        try:
            await Runner(HttpDestination(config)).run(timeout=30, count=1)
        except ConfigError as exc:
            assert "credentials" in str(exc)
        else:
            raise AssertionError("a 401 must stop the destination")
    assert await gateway.broker.committed("connector-http-destination-h2", "h2") == {}


async def test_slack_posts_messages_and_dead_letters_template_misses(gateway: Gateway) -> None:
    event = EventData(id="overheat", value="engine 120C", timestamp=1)
    await put(
        gateway,
        "alerts",
        [
            Record(value=encode(event), key=b"car-7"),
            Record(value=b'{"other": 1}'),  # no id/value: the template cannot be filled
        ],
    )
    limited = [True]

    async def post_message(request: Request, body: bytes) -> Response:
        assert request.headers["authorization"] == "Bearer xoxb-test"
        assert request.headers["content-type"].startswith("application/json")
        if limited:
            limited.pop()
            return JSONResponse({"ok": False, "error": "ratelimited"})
        return JSONResponse({"ok": True, "ts": "1.2"})

    async with stand_in({("POST", "/api/chat.postMessage"): post_message}) as slack:
        config = SlackConfig(
            input_topic="alerts",
            bot_token="xoxb-test",  # type: ignore[arg-type]
            channel="#ops",
            text="{streamId}: {id} {value}",
            api_url=slack.url + "/api",
            **platform(gateway),
        )
        result = await Runner(SlackDestination(config)).run(timeout=30, count=2)
    bodies = [json.loads(r.body) for r in slack.requests]
    assert bodies[-1] == {"channel": "#ops", "text": "car-7: overheat engine 120C"}
    assert len(bodies) == 2  # rate-limited once, then sent
    assert result.dead_letters == 1
    (dead,) = await gateway.read("alerts-dead-letter", 1)
    assert b"template" in dict(dead.headers)["x-error"]


async def test_twilio_sends_sms_per_recipient_and_dead_letters_invalid_numbers(
    gateway: Gateway,
) -> None:
    await put(
        gateway,
        "sms",
        [
            Record(value=b'{"msg": "door open", "phone": "+15551230001"}'),
            Record(value=b'{"msg": "bad", "phone": "+1000"}'),
        ],
    )
    sid = "AC0123456789abcdef0123456789abcdef"

    async def messages(request: Request, body: bytes) -> Response:
        expected = "Basic " + base64.b64encode(f"{sid}:tw-secret".encode()).decode()
        assert request.headers["authorization"] == expected
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form["To"] == "+1000":
            return JSONResponse(
                {"code": 21211, "message": "The 'To' number +1000 is not valid."}, status_code=400
            )
        return JSONResponse({"sid": "SM1", "status": "queued"}, status_code=201)

    path = f"/2010-04-01/Accounts/{sid}/Messages.json"
    async with stand_in({("POST", path): messages}) as twilio:
        config = TwilioConfig(
            input_topic="sms",
            account_sid=sid,
            auth_token="tw-secret",  # type: ignore[arg-type]
            from_number="+15005550006",
            to=["+15559990000"],
            to_field="phone",
            body="Alert: {msg}",
            api_url=twilio.url,
            **platform(gateway),
        )
        result = await Runner(TwilioDestination(config)).run(timeout=30, count=2)
    forms = [{k: v[0] for k, v in parse_qs(r.body.decode()).items()} for r in twilio.requests]
    sent_ok = [f for f in forms if f["Body"] == "Alert: door open"]
    assert sorted(f["To"] for f in sent_ok) == ["+15551230001", "+15559990000"]
    assert all(f["From"] == "+15005550006" for f in forms)
    assert result.dead_letters == 1
    (dead,) = await gateway.read("sms-dead-letter", 1)
    assert json.loads(dead.value)["phone"] == "+1000"
    assert b"21211" in dict(dead.headers)["x-error"]
