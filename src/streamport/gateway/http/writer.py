"""The Writer HTTP API under ``/writer``, compatible with Quix's (spec: quix-api.md §1).

A Quix client changes only its base URL: ``https://writer-{env}.platform.quix.io`` becomes
``http://HOST:PORT/writer``. Bodies bind camelCase and PascalCase alike; every write is answered
only after the broker made it durable. Beyond Quix, ``POST /topics/{topic}/messages`` writes plain
records (the shape quixstreams 3.x applications produce and consume).
"""

from __future__ import annotations

import re

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from streamport.broker import validate_topic_name
from streamport.errors import ValidationError
from streamport.gateway.http.common import (
    decode_json,
    json_response,
    principal,
    read_body,
    render_error,
    require_json,
)
from streamport.gateway.http.records import parse_records
from streamport.gateway.state import GatewayApp, state_of
from streamport.model import (
    StreamEndType,
    parameter_data_envelope,
    parse_event_data,
    parse_event_definitions,
    parse_parameter_definitions,
    parse_stream_details,
)
from streamport.streams.writer import Writer, check_stream_id

OK = 200


def _writer(request: Request) -> Writer:
    state = state_of(request)
    return state.writer


def _topic(request: Request) -> str:
    topic = validate_topic_name(request.path_params["topic"])
    principal(request, "write", topic)
    return topic


def _stream(request: Request) -> tuple[str, str]:
    topic = _topic(request)
    stream_id = request.path_params["stream_id"]
    check_stream_id(stream_id)
    return topic, stream_id


async def _json_body(request: Request, *, optional: bool = False) -> bytes | dict[str, object]:
    """The JSON body's bytes (the model parsers decode them, fastest straight into their types);
    with `optional`, an empty body (with any content type) is ``{}``."""
    if not optional:
        return await read_body(request)
    body = await read_body(request, json=False)
    if not body.strip():
        return {}
    require_json(request)
    return body


async def create_stream(request: Request) -> Response:
    topic = _topic(request)
    properties = parse_stream_details(await _json_body(request, optional=True))
    stream_id = await _writer(request).create_stream(topic, properties)
    return json_response({"streamId": stream_id})


async def update_stream(request: Request) -> Response:
    topic, stream_id = _stream(request)
    properties = parse_stream_details(await _json_body(request, optional=True))
    await _writer(request).write(topic, stream_id, properties)
    return Response(status_code=OK)


async def _write_data(request: Request, topic: str, stream_id: str, kind: str) -> None:
    """The data writes (``kind`` ``events`` or ``parameters``), shared by the routes and the fast
    path below: check, authorise, parse, write durably."""
    validate_topic_name(topic)
    principal(request, "write", topic)
    check_stream_id(stream_id)
    body = await read_body(request)
    writer = state_of(request).writer
    if kind == "events":
        events = parse_event_data(body)
        # One message per request: a list is written as "EventData[]", one event as "EventData".
        await writer.write(topic, stream_id, events if len(events) != 1 else events[0])
    else:
        await writer.write_encoded(topic, stream_id, parameter_data_envelope(body))


async def send_parameter_data(request: Request) -> Response:
    params = request.path_params
    await _write_data(request, params["topic"], params["stream_id"], "parameters")
    return Response(status_code=OK)


async def send_event_data(request: Request) -> Response:
    params = request.path_params
    await _write_data(request, params["topic"], params["stream_id"], "events")
    return Response(status_code=OK)


async def set_parameter_definitions(request: Request) -> Response:
    topic, stream_id = _stream(request)
    definitions = parse_parameter_definitions(await _json_body(request))
    await _writer(request).write(topic, stream_id, definitions)
    return Response(status_code=OK)


async def set_event_definitions(request: Request) -> Response:
    topic, stream_id = _stream(request)
    definitions = parse_event_definitions(await _json_body(request))
    await _writer(request).write(topic, stream_id, definitions)
    return Response(status_code=OK)


async def close_stream(request: Request) -> Response:
    """Write a StreamEnd. Quix sends no body; ``{"endType": "Aborted"}`` is accepted too."""
    topic, stream_id = _stream(request)
    raw = await _json_body(request, optional=True)
    body: object = decode_json(raw) if isinstance(raw, bytes) else raw
    end_type = StreamEndType.CLOSED
    if isinstance(body, dict):
        given = {k.lower(): v for k, v in body.items()}.get("endtype")
        if given is not None:
            end_type = _end_type(given)
    await _writer(request).close_stream(topic, stream_id, end_type)
    return Response(status_code=OK)


def _end_type(raw: object) -> StreamEndType:
    names = {t.value.lower(): t for t in StreamEndType}
    if isinstance(raw, str) and raw.lower() in names:
        return names[raw.lower()]
    raise ValidationError(
        f"endType must be one of {', '.join(t.value for t in StreamEndType)}", field="endType"
    )


async def send_messages(request: Request) -> Response:
    topic = _topic(request)
    require_json(request)
    records = parse_records(decode_json(await read_body(request)))
    placed = await _writer(request).produce(topic, records)
    return json_response({"offsets": [{"partition": p, "offset": o} for p, o in placed]})


_DATA_PATH = re.compile(r"/writer/topics/([^/]+)/streams/([^/]+)/(events|parameters)/data")
_OK_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
_OK_BODY = {"type": "http.response.body", "body": b""}


async def data_fast_path(app: GatewayApp, scope: Scope, receive: Receive, send: Send) -> bool:
    """``POST .../events/data`` and ``.../parameters/data`` without Starlette's stack.

    The same `_write_data` and error handlers as the routes below (which still answer other
    methods on these paths, e.g. 405); only the framework around them is skipped.
    """
    if scope["method"] != "POST":
        return False
    match = _DATA_PATH.fullmatch(scope["path"])
    if match is None:
        return False
    scope["app"] = app  # what Starlette sets; the shared helpers find the state through it
    request = Request(scope, receive)
    try:
        await _write_data(request, match.group(1), match.group(2), match.group(3))
    except ClientDisconnect:
        return True  # nobody to answer; nothing was written
    except Exception as exc:
        response = await render_error(request, exc)
        await response(scope, receive, send)
        return True
    await send(_OK_START)
    await send(_OK_BODY)
    return True


# Mounted at /writer/topics, first among the gateway's routes: these are its hottest paths, and
# Starlette tries routes in order. The data routes come first for the same reason.
PREFIX = "/writer/topics"
_STREAM = "/{topic}/streams/{stream_id}"
routes = [
    Route(_STREAM + "/events/data", send_event_data, methods=["POST"]),
    Route(_STREAM + "/parameters/data", send_parameter_data, methods=["POST"]),
    Route("/{topic}/messages", send_messages, methods=["POST"]),
    Route("/{topic}/streams", create_stream, methods=["POST"]),
    Route(_STREAM, update_stream, methods=["PUT"]),
    Route(_STREAM + "/parameters", set_parameter_definitions, methods=["PUT"]),
    Route(_STREAM + "/events", set_event_definitions, methods=["PUT"]),
    Route(_STREAM + "/close", close_stream, methods=["POST"]),
]
