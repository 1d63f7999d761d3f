"""A stand-in HTTP server for tests: a Starlette app on a free loopback port, in the test's loop,
recording every request (method, path, query, headers, body) it answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.services.ports import free_port


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    url: str
    requests: list[Seen] = field(default_factory=list)


Handler = Callable[[Request, bytes], Awaitable[Response]]


@contextlib.asynccontextmanager
async def stand_in(routes: Mapping[tuple[str, str], Handler]) -> AsyncIterator[StandIn]:
    """Serve `routes` ({(method, path): handler(request, body)}) until the block ends."""
    port = free_port()
    server_info = StandIn(f"http://127.0.0.1:{port}")

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            body = await request.body()
            server_info.requests.append(
                Seen(
                    request.method,
                    request.url.path,
                    dict(request.query_params),
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                )
            )
            return await handler(request, body)

        return serve

    app = Starlette(
        routes=[Route(path, endpoint(h), methods=[m]) for (m, path), h in routes.items()]
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield server_info
    finally:
        server.should_exit = True
        await task
