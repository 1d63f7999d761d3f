"""What every HTTP endpoint shares: JSON in and out, the error body, auth, body limits.

Errors reach clients as ``{"error": {"code": ..., "message": ..., "field": ...}}`` with the status
of `STATUS`; each is counted in ``streamport_errors{code}``.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from streamport import errors
from streamport.gateway.auth import ANONYMOUS_ADMIN, Action, Principal, bearer_token
from streamport.gateway.state import state_of

log = logging.getLogger("streamport.gateway")

# Most specific first: the first matching class decides the status and code.
STATUS: list[tuple[type[Exception], int, str]] = [
    (errors.RecordTooLarge, 413, "record_too_large"),
    (errors.ValidationError, 400, "invalid"),
    (errors.CodecError, 400, "invalid_message"),
    (errors.Unauthenticated, 401, "unauthenticated"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.UnknownTopic, 404, "unknown_topic"),
    (errors.TopicExists, 409, "topic_exists"),
    (errors.InvalidOffset, 400, "invalid_offset"),
    (errors.BrokerUnavailable, 503, "broker_unavailable"),
    (errors.BrokerClosed, 503, "broker_unavailable"),
    (errors.BrokerError, 500, "broker_error"),
]

_encoder = msgspec.json.Encoder()


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(_encoder.encode(content), status_code, headers, media_type="application/json")


def error_response(
    request: Request, status: int, code: str, message: str, field: str | None = None
) -> Response:
    state = state_of(request)
    state.metrics.errors.labels(code).inc()
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response({"error": body}, status, headers)


async def handle_streamport_error(request: Request, exc: Exception) -> Response:
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            field = exc.field if isinstance(exc, errors.ValidationError) else None
            return error_response(request, status, code, str(exc), field)
    return await handle_unexpected(request, exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
    }
    return error_response(
        request, exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail
    )


async def render_error(request: Request, exc: Exception) -> Response:
    """The response the app's exception handlers give for `exc` (for code outside Starlette's
    stack, such as the fast paths)."""
    if isinstance(exc, errors.StreamportError):
        return await handle_streamport_error(request, exc)
    if isinstance(exc, HTTPException):
        return await handle_http_error(request, exc)
    return await handle_unexpected(request, exc)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error serving %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal", "internal server error (logged)")


def header(request: Request, name: bytes) -> str | None:
    """One request header (`name` in lower case), read straight from the ASGI scope: the hot
    paths need two or three headers, not a `Headers` object built per request."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def principal(request: Request, action: Action, topic: str | None = None) -> Principal:
    """The caller, checked for `action` on `topic`; raises Unauthenticated / Forbidden."""
    state = state_of(request)
    if not state.settings.auth:
        return ANONYMOUS_ADMIN
    who = state.tokens.authenticate(bearer_token(header(request, b"authorization")))
    who.require(action, topic)
    return who


def require_json(request: Request) -> None:
    content_type = header(request, b"content-type") or ""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise HTTPException(415, "Content-Type must be application/json")


async def read_body(request: Request, *, json: bool = True) -> bytes:
    """The request body, refused with 413 past the configured limit (without reading it all)."""
    if json:
        require_json(request)
    state = state_of(request)
    limit = state.settings.max_body_bytes
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body is over the limit of {limit} bytes")
    # Read the ASGI messages directly: cheaper than Request.stream() on the hottest path.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_json(body: bytes, field: str = "body") -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise errors.ValidationError(f"{field} is not valid JSON: {exc}", field=field) from exc
