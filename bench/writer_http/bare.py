"""The reference server: the same stack (Starlette + uvicorn) with an endpoint that only parses the
request's JSON and answers 200 (``/parse``), and one that only checks the JSON syntax of an
object's members, as cheaply as msgspec can (``/check``: what a request that may not answer 200
for invalid JSON costs on this stack before it does anything with the body).
Run: python bench/writer_http/bare.py PORT"""

from __future__ import annotations

import sys

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def parse_only(request: Request) -> Response:
    msgspec.json.decode(await request.body())
    return Response(status_code=200)


_syntax = msgspec.json.Decoder(dict[str, msgspec.Raw])


async def check_only(request: Request) -> Response:
    _syntax.decode(await request.body())
    return Response(status_code=200)


app = Starlette(
    routes=[
        Route("/parse", parse_only, methods=["POST"]),
        Route("/check", check_only, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
