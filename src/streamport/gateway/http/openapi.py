"""The OpenAPI 3.1 contract of the Writer API (and plain messages), served at ``/openapi.json``,
with Swagger UI at ``/docs`` (bundled by the swagger-ui-bundle-v2 package: no CDN needed).

The document describes camelCase bodies; PascalCase is accepted as well (Quix samples send it).
Every error response has the same body: ``{"error": {"code", "message", "field"?}}``.
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from streamport._version import __version__
from streamport.gateway.http.common import json_response

_REF = "#/components/schemas/"
INT64 = {"type": "integer", "format": "int64"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _columns(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "array", "items": item}}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                },
            }
        },
    },
    "StreamDetails": {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"]},
            "location": {"type": ["string", "null"], "examples": ["simulations/trials"]},
            "metadata": {"anyOf": [STRING_MAP, {"type": "null"}]},
            "parents": {"type": ["array", "null"], "items": {"type": "string"}},
            "timeOfRecording": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "StreamCreated": {
        "type": "object",
        "required": ["streamId"],
        "properties": {"streamId": {"type": "string"}},
    },
    "ParameterData": {
        "type": "object",
        "description": "Columns aligned with timestamps (ns since the Unix epoch; epoch is added).",
        "properties": {
            "epoch": INT64,
            "timestamps": {"type": "array", "items": INT64},
            "numericValues": _columns({"type": ["number", "null"]}),
            "stringValues": _columns({"type": ["string", "null"]}),
            "binaryValues": _columns({"type": ["string", "null"], "contentEncoding": "base64"}),
            "tagValues": _columns({"type": ["string", "null"]}),
        },
    },
    "EventData": {
        "type": "object",
        "required": ["id", "timestamp"],
        "properties": {
            "id": {"type": "string"},
            "timestamp": INT64,
            "value": {"type": ["string", "null"]},
            "tags": {"anyOf": [STRING_MAP, {"type": "null"}]},
        },
    },
    "ParameterDefinition": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "description": {"type": ["string", "null"]},
            "minimumValue": {"type": ["number", "null"]},
            "maximumValue": {"type": ["number", "null"]},
            "unit": {"type": ["string", "null"]},
            "format": {"type": ["string", "null"]},
            "customProperties": {"type": ["string", "null"], "description": "JSON text"},
            "location": {"type": ["string", "null"], "examples": ["/chassis/engine"]},
        },
    },
    "EventDefinition": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "description": {"type": ["string", "null"]},
            "customProperties": {"type": ["string", "null"]},
            "location": {"type": ["string", "null"]},
            "level": {
                "anyOf": [
                    {
                        "type": "string",
                        "enum": ["Trace", "Debug", "Information", "Warning", "Error", "Critical"],
                    },
                    {"type": "integer", "minimum": 0, "maximum": 5},
                    {"type": "null"},
                ]
            },
        },
    },
    "Close": {
        "type": "object",
        "properties": {"endType": {"type": "string", "enum": ["Closed", "Aborted", "Terminated"]}},
    },
    "Message": {
        "type": "object",
        "required": ["value"],
        "properties": {
            "key": {"type": ["string", "null"]},
            "value": {"description": "any JSON; stored as its JSON bytes"},
            "headers": STRING_MAP,
            "timestamp": {
                "type": "integer",
                "minimum": 0,
                "description": "ms since the Unix epoch",
            },
        },
    },
    "Offsets": {
        "type": "object",
        "required": ["offsets"],
        "properties": {
            "offsets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["partition", "offset"],
                    "properties": {"partition": {"type": "integer"}, "offset": {"type": "integer"}},
                },
            }
        },
    },
}

_ERRORS = {
    "400": "Invalid body or parameter; `field` names it",
    "401": "Missing or unknown access token",
    "403": "The token lacks write:<topic>",
    "404": "Unknown topic (auto-creation off) or path",
    "405": "Wrong method for this path",
    "413": "Body over the size limit",
    "415": "Content-Type is not application/json",
    "503": "The broker cannot durably accept the write now; retry",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _operation(
    summary: str, body: dict[str, Any] | None, ok: dict[str, Any], *, body_required: bool = True
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for status, text in _ERRORS.items():
        responses[status] = {
            "description": text,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    return op


_EMPTY_OK = {"description": "Durably written"}
_TOPIC = {
    "name": "topic",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"},
}
_STREAM_ID = {
    "name": "stream_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/\\\\]+$"},
}


@functools.cache
def document() -> dict[str, Any]:
    stream = "/writer/topics/{topic}/streams/{stream_id}"
    stream_params = [_TOPIC, _STREAM_ID]
    paths: dict[str, Any] = {
        "/writer/topics/{topic}/streams": {
            "parameters": [_TOPIC],
            "post": _operation(
                "Create a stream",
                _ref("StreamDetails"),
                {
                    "description": "The new stream's id",
                    "content": {"application/json": {"schema": _ref("StreamCreated")}},
                },
                body_required=False,
            ),
        },
        stream: {
            "parameters": stream_params,
            "put": _operation(
                "Set the stream's properties (full replace); creates the stream",
                _ref("StreamDetails"),
                _EMPTY_OK,
                body_required=False,
            ),
        },
        stream + "/parameters/data": {
            "parameters": stream_params,
            "post": _operation("Send timeseries data", _ref("ParameterData"), _EMPTY_OK),
        },
        stream + "/events/data": {
            "parameters": stream_params,
            "post": _operation(
                "Send events (an array, or one event)",
                {"anyOf": [{"type": "array", "items": _ref("EventData")}, _ref("EventData")]},
                _EMPTY_OK,
            ),
        },
        stream + "/parameters": {
            "parameters": stream_params,
            "put": _operation(
                "Set parameter definitions",
                {"type": "array", "items": _ref("ParameterDefinition")},
                _EMPTY_OK,
            ),
        },
        stream + "/events": {
            "parameters": stream_params,
            "put": _operation(
                "Set event definitions",
                {"type": "array", "items": _ref("EventDefinition")},
                _EMPTY_OK,
            ),
        },
        stream + "/close": {
            "parameters": stream_params,
            "post": _operation("Close the stream", _ref("Close"), _EMPTY_OK, body_required=False),
        },
        "/writer/topics/{topic}/messages": {
            "parameters": [_TOPIC],
            "post": _operation(
                "Write plain records (quixstreams 3.x JSON messages)",
                {"anyOf": [{"type": "array", "items": _ref("Message")}, _ref("Message")]},
                {
                    "description": "Where each record was written",
                    "content": {"application/json": {"schema": _ref("Offsets")}},
                },
            ),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamport Writer API",
            "version": __version__,
            "description": "Quix-compatible Writer API. Bodies bind camelCase and PascalCase. "
            "A 200 means the data is durable in the broker.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(request: Request) -> Response:
    return json_response(document())


_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>streamport API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_DOCS_PAGE)


def routes() -> list[BaseRoute]:
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Mount("/docs/static", app=StaticFiles(directory=swagger_ui_path), name="docs-static"),
    ]
