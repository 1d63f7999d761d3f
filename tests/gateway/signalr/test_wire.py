"""The server against a raw client: exact frames, bad input, status codes, timeouts, overflow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from streamport.gateway.signalr import MetricEvent

from .conftest import WS_PROTOCOLS
from .rawclient import RS, RawConnection, negotiate, raw_connection, stalled_client
from .support import FORBIDDEN_TOKEN, GOOD_TOKEN, RunningServer, running_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=sorted(WS_PROTOCOLS))
def strict_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with running_server(
        WS_PROTOCOLS[request.param],
        detailed_errors=True,
        max_message_size=1024,
        handshake_timeout=1.5,
        outgoing_queue_messages=16,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def timeout_server() -> Iterator[RunningServer]:
    with running_server(
        keep_alive_interval=0.2, client_timeout=1.0, disconnect_timeout=0.5
    ) as server:
        yield server


async def _closed_with(conn: RawConnection, expected: dict[str, object]) -> None:
    assert await conn.recv_skip_pings() == expected
    await conn.ws.wait_closed()
    assert conn.ws.close_code == 1000


# -- negotiate ------------------------------------------------------------------------------------------


async def test_negotiate_v1_and_v0_bodies(hub_server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        v1 = await http.post(hub_server.url("/hub/negotiate"), params={"negotiateVersion": "1"})
        v0 = await http.post(hub_server.url("/hub/negotiate"))
    transports = [
        {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
        {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
        {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]},
    ]
    assert v1.status_code == 200 and v1.headers["content-type"] == "application/json"
    body = v1.json()
    assert list(body) == [
        "negotiateVersion",
        "connectionId",
        "connectionToken",
        "availableTransports",
    ]
    assert body["negotiateVersion"] == 1 and body["availableTransports"] == transports
    for value in (body["connectionId"], body["connectionToken"]):
        assert len(value) == 22 and not set(value) & set("+/=")
    assert body["connectionId"] != body["connectionToken"]
    body0 = v0.json()
    assert body0["negotiateVersion"] == 0 and "connectionToken" not in body0
    assert body0["availableTransports"] == transports


async def test_negotiate_errors(hub_server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        bad = await http.post(hub_server.url("/hub/negotiate"), params={"negotiateVersion": "x"})
        get = await http.get(hub_server.url("/hub/negotiate"))
        no_token = await http.post(hub_server.url("/authhub/negotiate"))
        wrong = await http.post(
            hub_server.url("/authhub/negotiate"), headers={"Authorization": "Bearer nope"}
        )
        good = await http.post(
            hub_server.url("/authhub/negotiate"), params={"access_token": GOOD_TOKEN}
        )
        forbidden = await http.post(
            hub_server.url("/authhub/negotiate"),
            headers={"Authorization": f"Bearer {FORBIDDEN_TOKEN}"},
        )
    assert bad.status_code == 200
    assert bad.json() == {"error": "The client requested a non-integer protocol version."}
    assert get.status_code == 405
    assert no_token.status_code == 401 and wrong.status_code == 401
    assert good.status_code == 200
    assert forbidden.status_code == 403


async def test_status_codes_of_the_hub_endpoint(hub_server: RunningServer) -> None:
    url = hub_server.url("/hub")
    ws_conn = await negotiate(hub_server.base, negotiateVersion="1")
    async with httpx.AsyncClient() as http:
        no_id = await http.post(url, content=b"x")
        unknown = await http.get(url, params={"id": "nope"})
        put = await http.put(url, params={"id": "nope"})
        # a connection on WebSockets: POST and DELETE are refused
        async with connect(
            f"{hub_server.ws_base}/hub?id={ws_conn['connectionToken']}", ping_interval=None
        ):
            token = ws_conn["connectionToken"]
            post = await http.post(url, params={"id": token}, content=b"x")
            delete = await http.delete(url, params={"id": token})
            poll = await http.get(url, params={"id": token})
    assert (no_id.status_code, no_id.text) == (400, "Connection ID required")
    assert (unknown.status_code, unknown.text) == (404, "No Connection with that ID")
    assert put.status_code == 405
    assert (post.status_code, post.text) == (
        405,
        "POST requests are not allowed for WebSocket connections.",
    )
    assert (delete.status_code, delete.text) == (
        400,
        "Cannot terminate this connection using the DELETE endpoint.",
    )
    assert (poll.status_code, poll.text) == (400, "Cannot change transports mid-connection")


async def test_websocket_to_an_unknown_id_is_404(hub_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{hub_server.ws_base}/hub?id=unknown", ping_interval=None):
            pass
    assert info.value.response.status_code == 404


async def test_websocket_origin_check_and_second_socket(hub_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(
            f"{hub_server.ws_base}/hub", ping_interval=None, origin=Origin("https://evil.example")
        ):
            pass
    assert info.value.response.status_code == 403
    body = await negotiate(hub_server.base, negotiateVersion="1")
    url = f"{hub_server.ws_base}/hub?id={body['connectionToken']}"
    async with connect(url, ping_interval=None, origin=Origin("http://127.0.0.1:1")):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, ping_interval=None):
                pass
        assert info.value.response.status_code == 409


async def test_websocket_token_by_query_or_header(hub_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{hub_server.ws_base}/authhub", ping_interval=None):
            pass
    assert info.value.response.status_code == 401
    # skipNegotiation: no id, the connection is created at the upgrade
    for url, headers in [
        (f"{hub_server.ws_base}/authhub?access_token={GOOD_TOKEN}", {}),
        (f"{hub_server.ws_base}/authhub", {"Authorization": f"Bearer {GOOD_TOKEN}"}),
    ]:
        async with connect(url, ping_interval=None, additional_headers=headers) as ws:
            await ws.send('{"protocol":"json","version":1}' + RS)
            assert await ws.recv() == "{}" + RS
            await ws.send(
                '{"type":1,"invocationId":"7","target":"GetPrincipal","arguments":[]}' + RS
            )
            reply = json.loads(str(await ws.recv()).rstrip(RS))
            assert reply == {"type": 3, "invocationId": "7", "result": {"user": "tester"}}


async def test_cors_preflight_and_headers(hub_server: RunningServer) -> None:
    origin = "http://127.0.0.1:1"
    async with httpx.AsyncClient() as http:
        preflight = await http.options(
            hub_server.url("/hub/negotiate"),
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-requested-with,x-signalr-user-agent,authorization",
            },
        )
        real = await http.post(hub_server.url("/hub/negotiate"), headers={"Origin": origin})
        foreign = await http.post(
            hub_server.url("/hub/negotiate"), headers={"Origin": "https://evil.example"}
        )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "x-signalr-user-agent" in preflight.headers["access-control-allow-headers"]
    assert "DELETE" in preflight.headers["access-control-allow-methods"]
    assert real.headers["access-control-allow-origin"] == origin
    assert real.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in foreign.headers


# -- framing and messages -------------------------------------------------------------------------------


async def test_incomplete_message_is_buffered_until_its_separator(
    hub_server: RunningServer,
) -> None:
    async with raw_connection(hub_server.base) as conn:
        await conn.send_text('{"type":1,"invocationId":"1","target":"Echo","argu')
        await conn.send_text('ments":["a"]}' + RS + '{"type":1,"invocationId":"2","tar')
        await conn.send_text('get":"Add","arguments":[1,2]}' + RS)
        assert await conn.recv_skip_pings() == {"type": 3, "invocationId": "1", "result": "a"}
        assert await conn.recv_skip_pings() == {"type": 3, "invocationId": "2", "result": 3}


async def test_batched_messages_and_binary_handshake(hub_server: RunningServer) -> None:
    body = await negotiate(hub_server.base, negotiateVersion="1")
    url = f"{hub_server.ws_base}/hub?id={body['connectionToken']}"
    async with connect(url, ping_interval=None) as ws:
        # the Python clients send the handshake in a Binary frame; accept it, answer in Text for JSON
        await ws.send(b'{"protocol":"json","version":0}\x1e')
        assert await ws.recv() == "{}" + RS
        await ws.send(
            '{"arguments":[2,3],"target":"add","type":1,"invocationId":"a","headers":{}}'
            + RS
            + '{"type":1,"invocationId":"b","target":"ECHO","arguments":[null],"streamIds":[]}'
            + RS
        )
        replies: list[str] = []
        while len(replies) < 2:
            replies += [p for p in str(await ws.recv()).split(RS) if p]
    assert [json.loads(r) for r in replies] == [
        {"type": 3, "invocationId": "a", "result": 5},
        {"type": 3, "invocationId": "b", "result": None},
    ]


async def test_messagepack_frames(hub_server: RunningServer) -> None:
    async with raw_connection(hub_server.base, protocol="messagepack") as conn:
        # JS writes 5-element Invocations, Python clients 6: both are accepted
        await conn.send_msgpack([1, {}, "1", "Add", [40, 2]])
        await conn.send_msgpack([1, {}, "2", "Echo", [b"\x01\x02"], []])
        await conn.send_msgpack([1, {}, None, "Push", ["Pushed", "x"]])
        await conn.send_msgpack([1, {}, "3", "Void", []])
        await conn.send_msgpack([1, {}, "4", "Nope", []])
        assert await conn.recv_skip_pings() == [3, {}, "1", 3, 42]
        assert await conn.recv_skip_pings() == [3, {}, "2", 3, b"\x01\x02"]
        # server push: always 6 elements (signalrcore reads the stream-ids slot)
        assert await conn.recv_skip_pings() == [1, {}, None, "Pushed", ["x"], []]
        assert await conn.recv_skip_pings() == [3, {}, "3", 2]
        assert await conn.recv_skip_pings() == [3, {}, "4", 1, "Unknown hub method 'Nope'"]


async def test_cancel_invocation_stops_a_stream(hub_server: RunningServer) -> None:
    async with raw_connection(hub_server.base) as conn:
        await conn.send_json({"type": 4, "invocationId": "s", "target": "Ticks", "arguments": []})
        assert await conn.recv_skip_pings() == {"type": 2, "invocationId": "s", "item": 0}
        await conn.send_json({"type": 5, "invocationId": "s"})
        while (message := await conn.recv_skip_pings())["type"] == 2:
            pass
        assert message == {"type": 3, "invocationId": "s"}  # the Completion ASP.NET sends, too
        # the same id can be used again once the stream has ended
        reply = await conn.invoke("Echo", "after", invocation_id="s")
        assert reply == {"type": 3, "invocationId": "s", "result": "after"}


async def test_stream_invocation_of_a_plain_method(hub_server: RunningServer) -> None:
    async with raw_connection(hub_server.base) as conn:
        await conn.send_json({"type": 4, "invocationId": "s", "target": "Echo", "arguments": [1]})
        assert await conn.recv_skip_pings() == {
            "type": 3,
            "invocationId": "s",
            "error": "The client attempted to invoke the non-streaming 'Echo' method with a "
            "streaming invocation.",
        }
        await conn.send_json(
            {"type": 1, "invocationId": "u", "target": "Concat", "arguments": [], "streamIds": []}
        )
        assert (await conn.recv_skip_pings())[
            "error"
        ] == "Client sent 0 stream(s), Hub method expects 1."


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_prepared_batch_arrives_complete_and_in_order(
    hub_server: RunningServer, protocol: str
) -> None:
    async with raw_connection(hub_server.base, protocol=protocol) as conn:
        if protocol == "json":
            await conn.send_json(
                {"type": 1, "invocationId": "1", "target": "PushBatch", "arguments": [3]}
            )
            pushed = [await conn.recv_skip_pings() for _ in range(3)]
            assert [m["arguments"] for m in pushed] == [[0], [1], [2]]
            assert await conn.recv_skip_pings() == {"type": 3, "invocationId": "1", "result": True}
        else:
            await conn.send_msgpack([1, {}, "1", "PushBatch", [3]])
            pushed = [await conn.recv_skip_pings() for _ in range(3)]
            assert pushed == [[1, {}, None, "Batch", [i], []] for i in range(3)]
            assert await conn.recv_skip_pings() == [3, {}, "1", 3, True]


async def test_prepared_batch_on_long_polling_is_one_message_per_poll(
    hub_server: RunningServer,
) -> None:
    body = await negotiate(hub_server.base)
    params = {"id": body["connectionId"]}
    url = hub_server.url("/hub")
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(url, params=params)).content == b""
        handshake = b'{"protocol":"json","version":1}\x1e'
        invoke = b'{"type":1,"invocationId":"1","target":"PushBatch","arguments":[2]}\x1e'
        await http.post(url, params=params, content=handshake + invoke)
        bodies = [(await http.get(url, params=params)).content for _ in range(4)]
        await http.delete(url, params=params)
    assert bodies == [
        b"{}\x1e",
        b'{"type":1,"target":"Batch","arguments":[0]}\x1e',
        b'{"type":1,"target":"Batch","arguments":[1]}\x1e',
        b'{"type":3,"invocationId":"1","result":true}\x1e',
    ]


async def test_fire_and_forget_errors_get_no_reply(hub_server: RunningServer) -> None:
    async with raw_connection(hub_server.base) as conn:
        await conn.send_json({"type": 1, "target": "Nope", "arguments": []})
        await conn.send_json({"type": 1, "target": "Add", "arguments": [1]})
        await conn.send_json({"type": 1, "target": "ThrowOther", "arguments": []})
        assert await conn.invoke("Echo", "next") == {
            "type": 3,
            "invocationId": "1",
            "result": "next",
        }


async def test_binding_errors_detailed(strict_server: RunningServer) -> None:
    async with raw_connection(strict_server.base) as conn:
        count = await conn.invoke("Add", 1)
        kind = await conn.invoke("add", "one", 2)
        other = await conn.invoke("ThrowOther")
        hub = await conn.invoke("ThrowHubError", "told you")
        stream = await conn.invoke("Counter", 3)
    assert count["error"] == (
        "Failed to invoke 'Add' due to an error on the server. "
        "InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
    )
    assert kind["error"].startswith(
        "Failed to invoke 'add' due to an error on the server. InvalidDataException: Error binding "
        "arguments. Make sure that the types of the provided values match the types of the hub "
        "method being invoked."
    )
    assert other["error"] == (
        "An unexpected error occurred invoking 'ThrowOther' on the server. "
        "ValueError: a secret detail"
    )
    assert hub["error"] == (
        "An unexpected error occurred invoking 'ThrowHubError' on the server. HubException: told you"
    )
    assert stream["error"] == (
        "The client attempted to invoke the streaming 'Counter' method with a non-streaming "
        "invocation."
    )


async def test_malformed_json_closes_with_an_error(strict_server: RunningServer) -> None:
    before = strict_server.metrics[MetricEvent.BAD_FRAME]
    async with raw_connection(strict_server.base) as conn:
        await conn.send_text("{not json" + RS)
        close = await conn.recv_skip_pings()
        await conn.ws.wait_closed()
    assert close["type"] == 7 and close["allowReconnect"] is True
    assert close["error"].startswith("Connection closed with an error. InvalidDataException: ")
    assert conn.ws.close_code == 1000
    assert strict_server.metrics[MetricEvent.BAD_FRAME] == before + 1


async def test_missing_type_closes_with_an_error(strict_server: RunningServer) -> None:
    async with raw_connection(strict_server.base) as conn:
        await conn.send_text('{"target":"Echo","arguments":[]}' + RS)
        await _closed_with(
            conn,
            {
                "type": 7,
                "error": "Connection closed with an error. InvalidDataException: "
                "Missing required property 'type'.",
                "allowReconnect": True,
            },
        )


async def test_bad_varint_closes(strict_server: RunningServer) -> None:
    async with raw_connection(strict_server.base, protocol="messagepack") as conn:
        await conn.ws.send(b"\xff\xff\xff\xff\xff\x01")
        close = await conn.recv_skip_pings()
        assert close[0] == 7 and "2GB" in close[1]


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "incomplete"])
async def test_oversized_message_closes(strict_server: RunningServer, complete: bool) -> None:
    before = strict_server.metrics[MetricEvent.MESSAGE_TOO_LARGE]
    async with raw_connection(strict_server.base) as conn:
        big = json.dumps(
            {"type": 1, "invocationId": "1", "target": "Echo", "arguments": ["x" * 2000]}
        )
        await conn.send_text(big + (RS if complete else ""))
        await _closed_with(
            conn,
            {
                "type": 7,
                "error": "Connection closed with an error. InvalidDataException: The maximum "
                "message size of 1024B was exceeded. The message size can be configured in "
                "AddHubOptions.",
                "allowReconnect": True,
            },
        )
    assert strict_server.metrics[MetricEvent.MESSAGE_TOO_LARGE] == before + 1


async def test_handshake_errors(strict_server: RunningServer) -> None:
    cases = [
        ('{"protocol":"xml","version":1}', "The protocol 'xml' is not supported."),
        (
            '{"protocol":"json","version":3}',
            "The server does not support version 3 of the 'json' protocol.",
        ),
        ("{oops", "An unexpected error occurred during connection handshake."),
    ]
    for request, error in cases:
        async with raw_connection(strict_server.base, handshake=False) as conn:
            await conn.send_text(request + RS)
            assert await conn.ws.recv() == json.dumps({"error": error}, separators=(",", ":")) + RS
            await conn.ws.wait_closed()


async def test_client_that_never_handshakes_is_closed(strict_server: RunningServer) -> None:
    before = strict_server.metrics[MetricEvent.HANDSHAKE_TIMEOUT]
    async with raw_connection(strict_server.base, handshake=False) as conn:
        # nothing sent: after handshake_timeout (1.5 s here) the server answers and closes
        assert await conn.ws.recv() == '{"error":"Handshake was canceled."}' + RS
        await conn.ws.wait_closed()
    assert strict_server.metrics[MetricEvent.HANDSHAKE_TIMEOUT] == before + 1


async def test_abort_closes_without_allow_reconnect(hub_server: RunningServer) -> None:
    async with raw_connection(hub_server.base) as conn:
        await conn.send_json({"type": 1, "target": "Abort", "arguments": []})
        await _closed_with(conn, {"type": 7})


async def test_client_close_message_ends_the_connection(hub_server: RunningServer) -> None:
    async with raw_connection(hub_server.base) as conn:
        await conn.send_json({"type": 7})
        await conn.ws.wait_closed()
        assert conn.ws.close_code == 1000


# -- keep-alive, timeouts, expiry -----------------------------------------------------------------------


async def test_keep_alive_pings_then_client_timeout(timeout_server: RunningServer) -> None:
    before = timeout_server.metrics[MetricEvent.CLIENT_TIMEOUT]
    async with raw_connection(timeout_server.base) as conn:
        assert await conn.recv() == {"type": 6}  # keep-alive Ping (every 0.2 s here)
        # this client never sends: after client_timeout the server closes it, allowing a reconnect
        while (message := await conn.recv()) == {"type": 6}:
            pass
        assert message == {"type": 7, "allowReconnect": True}
        await conn.ws.wait_closed()
    assert timeout_server.metrics[MetricEvent.CLIENT_TIMEOUT] == before + 1


async def test_unused_negotiated_connection_expires(timeout_server: RunningServer) -> None:
    body = await negotiate(timeout_server.base, negotiateVersion="1")
    url = timeout_server.url("/hub")
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            response = await http.post(url, params={"id": body["connectionToken"]}, content=b"")
            if response.status_code == 404:
                break
            await asyncio.sleep(0.05)
    assert response.status_code == 404 and response.text == "No Connection with that ID"


# -- Server-Sent Events and Long Polling ----------------------------------------------------------------


async def test_long_polling_lifecycle(hub_server: RunningServer) -> None:
    body = await negotiate(hub_server.base, negotiateVersion="1")
    params = {"id": body["connectionToken"]}
    url = hub_server.url("/hub")
    async with httpx.AsyncClient(timeout=30) as http:
        first = await http.get(url, params=params)
        assert first.status_code == 200 and first.content == b""
        assert first.headers["cache-control"] == "no-cache, no-store"
        handshake = b'{"protocol":"json","version":1}\x1e'
        invoke = b'{"type":1,"invocationId":"1","target":"Echo","arguments":["lp"]}\x1e'
        assert (await http.post(url, params=params, content=handshake + invoke)).status_code == 200
        received = b""
        while received.count(b"\x1e") < 2:
            poll = await http.get(
                url, params=params, headers={"X-Requested-With": "XMLHttpRequest"}
            )
            assert poll.status_code == 200
            received += poll.content
        assert received == b'{}\x1e{"type":3,"invocationId":"1","result":"lp"}\x1e'
        deleted = await http.delete(url, params=params)
        assert deleted.status_code == 202
        after = await http.get(url, params=params)
        assert after.status_code == 404


async def test_long_polling_post_before_first_poll(hub_server: RunningServer) -> None:
    """signalrcore POSTs the handshake before its first poll: it must be kept."""
    body = await negotiate(hub_server.base)
    params = {"id": body["connectionId"]}  # v0: the connection id is the token
    url = hub_server.url("/hub")
    async with httpx.AsyncClient(timeout=30) as http:
        handshake = b'{"protocol":"json","version":0}\x1e'
        assert (await http.post(url, params=params, content=handshake)).status_code == 200
        assert (await http.get(url, params=params)).content == b""
        # without X-Requested-With one message per poll body (signalrcore reads only the first)
        assert (await http.get(url, params=params)).content == b"{}\x1e"


async def test_server_sent_events_stream(hub_server: RunningServer) -> None:
    body = await negotiate(hub_server.base, negotiateVersion="1")
    params = {"id": body["connectionToken"]}
    url = hub_server.url("/hub")
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", url, params=params, headers={"Accept": "text/event-stream"}) as sse,
    ):
        assert sse.status_code == 200
        assert sse.headers["content-type"] == "text/event-stream"
        assert sse.headers["cache-control"] == "no-cache,no-store"
        chunks = sse.aiter_raw()
        assert await anext(chunks) == b":\r\n"
        second = await http.get(url, params=params, headers={"Accept": "text/event-stream"})
        assert second.status_code == 409
        msgpack = b'{"protocol":"messagepack","version":1}\x1e'
        await http.post(url, params=params, content=b'{"protocol":"json","version":1}\x1e')
        data = b""
        while not data.endswith(b"\r\n\r\n"):
            data += await anext(chunks)
        assert data == b"data: {}\x1e\r\n\r\n"
        del msgpack


async def test_messagepack_is_refused_on_sse(hub_server: RunningServer) -> None:
    body = await negotiate(hub_server.base, negotiateVersion="1")
    params = {"id": body["connectionToken"]}
    url = hub_server.url("/hub")
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", url, params=params, headers={"Accept": "text/event-stream"}) as sse,
    ):
        chunks = sse.aiter_raw()
        assert await anext(chunks) == b":\r\n"
        await http.post(url, params=params, content=b'{"protocol":"messagepack","version":1}\x1e')
        data = b""
        async for chunk in chunks:
            data += chunk
    assert data == (
        b'data: {"error":"Cannot use the \'messagepack\' protocol on the current transport. '
        b"The transport does not support 'Binary' transfer format.\"}\x1e\r\n\r\n"
    )


# -- slow clients ---------------------------------------------------------------------------------------


async def test_outgoing_queue_overflow_closes_that_client(strict_server: RunningServer) -> None:
    before = strict_server.metrics[MetricEvent.OVERFLOW_CLOSE]
    async with raw_connection(strict_server.base) as conn:
        # 100 pushes at once into a 16-message queue: the client is closed, the method does not wait
        await conn.send_json({"type": 1, "target": "Flood", "arguments": [100, 10]})
        close = await conn.recv_skip_pings()
        await conn.ws.wait_closed()
    assert close == {
        "type": 7,
        "error": "Connection closed with an error. The client did not read messages fast enough "
        "and its outgoing queue overflowed.",
        "allowReconnect": True,
    }
    assert strict_server.metrics[MetricEvent.OVERFLOW_CLOSE] == before + 1


@pytest.mark.parametrize("ws", sorted(WS_PROTOCOLS))
async def test_a_stalled_reader_does_not_hold_back_the_others(ws: str) -> None:
    count = 2000  # x 8 KiB = 16 MiB: far more than the buffers between server and stalled client
    with running_server(WS_PROTOCOLS[ws], outgoing_queue_messages=256) as server:
        async with stalled_client(server.base), raw_connection(server.base) as reader:
            for _ in range(200):  # wait until the stalled client is connected (handshake done)
                if len(server.server.connections) == 2:
                    break
                await asyncio.sleep(0.02)
            assert len(server.server.connections) == 2
            await reader.send_json(
                {
                    "type": 1,
                    "invocationId": "1",
                    "target": "BroadcastFlood",
                    "arguments": [count, 8192, 0.005],
                }
            )
            got = 0
            while (message := await reader.recv_skip_pings()).get("target") == "Flood":
                # the reader that keeps up gets every message, in order
                assert message["arguments"][0] == got
                got += 1
            assert got == count
            # the stalled client was dropped on the way: it took fewer messages than the reader
            assert message["invocationId"] == "1" and count < message["result"] < 2 * count
        assert server.metrics[MetricEvent.OVERFLOW_CLOSE] == 1


@pytest.mark.parametrize("ws", sorted(WS_PROTOCOLS))
async def test_incoming_queue_full_pauses_reading_and_loses_nothing(ws: str) -> None:
    """Far more invocations than the incoming queue holds, while the hub is busy: the server
    stops reading until the dispatcher makes room, then every one is answered, in order."""
    count = 300
    with running_server(WS_PROTOCOLS[ws], incoming_queue_messages=4) as server:
        async with raw_connection(server.base) as conn:
            await conn.send_json(
                {"type": 1, "invocationId": "slow", "target": "Slow", "arguments": [0.3]}
            )
            for i in range(count):
                await conn.send_json(
                    {"type": 1, "invocationId": str(i), "target": "Echo", "arguments": [i]}
                )
            first = await conn.recv_skip_pings()
            assert first == {"type": 3, "invocationId": "slow", "result": "done"}
            for i in range(count):
                assert await conn.recv_skip_pings() == {
                    "type": 3,
                    "invocationId": str(i),
                    "result": i,
                }


@pytest.mark.parametrize("ws", sorted(WS_PROTOCOLS))
async def test_a_big_batch_goes_in_frames_of_at_most_max_batch_bytes(ws: str) -> None:
    """A `PreparedBatch` larger than ``max_batch_bytes`` is cut between messages (clients limit
    frame sizes: the `websockets` client to 1 MiB by default)."""
    limit = 64 * 1024
    with running_server(WS_PROTOCOLS[ws], max_batch_bytes=limit) as server:
        async with raw_connection(server.base) as conn:
            await conn.send_json(
                {"type": 1, "invocationId": "1", "target": "PushBigBatch", "arguments": [40, 9000]}
            )
            frames = [str(await conn.ws.recv())]
            while '"invocationId":"1"' not in frames[-1]:  # the completion, maybe in the last
                frames.append(str(await conn.ws.recv()))
            assert len(frames) >= 6  # 40 x ~9 KB = ~360 KB in frames of 64 KiB at most
            assert all(len(f.encode()) <= limit and f.endswith(RS) for f in frames)
            messages = [json.loads(part) for f in frames for part in f.split(RS) if part]
            assert messages.pop() == {"type": 3, "invocationId": "1", "result": True}
            assert [m["arguments"][0] for m in messages] == list(range(40))
            assert all(m["arguments"][1] == "x" * 9000 for m in messages)


@pytest.mark.parametrize("ws", sorted(WS_PROTOCOLS))
async def test_a_text_frame_that_is_not_utf8_closes_with_1007(ws: str) -> None:
    with running_server(WS_PROTOCOLS[ws]) as server:
        async with stalled_client(server.base) as sock:
            payload = b'{"type":1,"invocationId":"1","target":"Ec\xffho","arguments":[]}\x1e'
            sock.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            received = b""
            while chunk := await asyncio.to_thread(sock.recv, 65536):
                received += chunk
            # the handshake answer, then a Close frame with status 1007 (invalid payload data)
            close = received[received.index(b"\x88") :]
            assert int.from_bytes(close[2:4], "big") == 1007


async def test_client_results_on_the_wire(hub_server: RunningServer) -> None:
    """`Context.invoke` sends an Invocation with an id of its own; only the Completion with that
    id settles it (others are ignored); a void Completion is the result None."""
    async with raw_connection(hub_server.base) as conn:
        await conn.send_json(
            {"type": 1, "invocationId": "1", "target": "AskClient", "arguments": ["Add", 2, 3, 5]}
        )
        asked = await conn.recv_skip_pings()
        assert asked["type"] == 1 and asked["target"] == "Add" and asked["arguments"] == [2, 3]
        assert asked["invocationId"] and asked["invocationId"] != "1"
        await conn.send_json({"type": 3, "invocationId": "not-asked", "result": 7})
        await conn.send_json({"type": 3, "invocationId": asked["invocationId"], "result": 5})
        assert await conn.recv_skip_pings() == {"type": 3, "invocationId": "1", "result": 5}
        await conn.send_json(
            {"type": 1, "invocationId": "2", "target": "AskClient", "arguments": ["Add", 0, 0, 5]}
        )
        asked = await conn.recv_skip_pings()
        await conn.send_json({"type": 3, "invocationId": asked["invocationId"]})
        assert await conn.recv_skip_pings() == {"type": 3, "invocationId": "2", "result": None}
