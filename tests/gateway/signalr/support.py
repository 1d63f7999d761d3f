"""A test hub and a real uvicorn server running it on a free loopback port (in a thread)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.websockets import WebSocket

from streamport.errors import Forbidden, Unauthenticated
from streamport.gateway.signalr import (
    AuthRequest,
    ClientResultError,
    Context,
    CountingMetrics,
    HubError,
    PreparedBatch,
    PreparedMessage,
    ServerOptions,
    SignalRServer,
    WebSocketProtocol,
    hub_method,
)
from tests.services.ports import free_port

GOOD_TOKEN = "good-token"
FORBIDDEN_TOKEN = "read-only-token"


class Point(msgspec.Struct):
    x: int
    y: int


class TestHub:
    """Methods the client tests call. Wire names are the PascalCase the JS tests use."""

    __test__ = False  # not a pytest class

    def __init__(self, ctx: Context, server: SignalRServer | None = None) -> None:
        self.ctx = ctx
        self.server = server

    async def on_connected(self) -> None:
        self.ctx.items["connected"] = True

    async def echo(self, message: Any) -> Any:
        return message

    async def add(self, a: int, b: int) -> int:
        return a + b

    @hub_method("AddPoints")
    async def add_points(self, p: Point, q: Point) -> Point:
        return Point(p.x + q.x, p.y + q.y)

    @hub_method("ThrowHubError")
    async def throw_hub_error(self, message: str) -> None:
        raise HubError(message)

    @hub_method("ThrowOther")
    async def throw_other(self) -> None:
        raise ValueError("a secret detail")

    async def push(self, target: str, message: Any) -> None:
        """Pushes ``message`` back to the caller as ``target``."""
        self.ctx.send(target, message)

    @hub_method("PushBatch")
    async def push_batch(self, count: int) -> bool:
        """Pushes ``count`` messages as one `PreparedBatch`."""
        batch = PreparedBatch([PreparedMessage("Batch", [i]) for i in range(count)])
        return self.ctx.send_batch(batch)

    @hub_method("PushBigBatch")
    async def push_big_batch(self, count: int, size: int) -> bool:
        """Pushes ``count`` messages of ``size`` characters as one `PreparedBatch`."""
        batch = PreparedBatch([PreparedMessage("Big", [i, "x" * size]) for i in range(count)])
        return self.ctx.send_batch(batch)

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    async def void(self) -> None:
        return None

    @hub_method("GetPrincipal")
    async def get_principal(self) -> Any:
        return self.ctx.principal

    @hub_method("GetConnectionId")
    async def get_connection_id(self) -> str:
        return self.ctx.connection_id

    @hub_method("GetTransport")
    async def get_transport(self) -> str:
        return self.ctx.transport.value if self.ctx.transport else ""

    async def counter(self, count: int) -> AsyncIterator[int]:
        for i in range(count):
            yield i

    async def ticks(self) -> AsyncIterator[int]:
        """An endless stream, for cancellation."""
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0.01)

    @hub_method("StreamThrow")
    async def stream_throw(self, message: str) -> AsyncIterator[int]:
        yield 1
        raise HubError(message)

    async def concat(self, items: AsyncIterator[str]) -> str:
        return "".join([item async for item in items])

    async def abort(self) -> None:
        self.ctx.abort()

    @hub_method("AskClient")
    async def ask_client(self, target: str, a: int, b: int, timeout: float) -> Any:
        """Invokes ``target(a, b)`` on the caller and returns the client's result."""
        try:
            return await self.ctx.invoke(target, a, b, result_type=int, timeout=timeout)
        except ClientResultError as exc:
            raise HubError(f"client error: {exc}") from exc
        except TimeoutError:
            raise HubError("the client did not answer in time") from None

    async def flood(self, count: int, size: int) -> int:
        """Pushes ``count`` messages of ``size`` characters without waiting (overflow tests)."""
        sent = 0
        for _ in range(count):
            if self.ctx.send("Flood", "x" * size):
                sent += 1
        return sent

    @hub_method("BroadcastFlood")
    async def broadcast_flood(self, count: int, size: int, pause: float) -> int:
        """Broadcasts ``count`` messages of ``size`` characters to every connection.

        Broadcasting never waits; ``pause`` seconds every 16 messages pace it like a real feed.
        """
        assert self.server is not None
        total = 0
        for i in range(count):
            total += self.server.broadcast("Flood", i, "x" * size)
            if i % 16 == 15:
                await asyncio.sleep(pause)
        return total


async def authenticate(request: AuthRequest) -> object:
    if request.token == FORBIDDEN_TOKEN:
        raise Forbidden("this token may not use the hub")
    if request.token != GOOD_TOKEN:
        raise Unauthenticated("unknown token")
    return {"user": "tester"}


@dataclass
class RunningServer:
    port: int
    server: SignalRServer
    metrics: CountingMetrics
    options: ServerOptions
    ws: Any = WebSocketProtocol  # uvicorn's WebSocket protocol: ours (as `streamport up`) or "auto"
    _uvicorn: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, hub: str = "/hub") -> str:
        return self.base + hub

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart, on the same port) a fresh server with the same options."""
        self.metrics = CountingMetrics()
        self.options = replace(self.options, metrics=self.metrics)
        self.server, app = build_app(self.options)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            ws_ping_interval=None,  # SignalR keeps alive with hub Pings; signalrcore can't pong
            ws=self.ws,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(30)
            assert not self._thread.is_alive(), "uvicorn did not stop"
            self._uvicorn = None


async def raw_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


def build_app(options: ServerOptions) -> tuple[SignalRServer, Starlette]:
    server: SignalRServer = SignalRServer(lambda ctx: TestHub(ctx, server), options)
    open_server: SignalRServer = SignalRServer(
        lambda ctx: TestHub(ctx, open_server), replace(options, authenticate=None)
    )
    app = Starlette(
        routes=[
            server.route("/authhub"),
            open_server.route("/hub"),
            Route("/health", lambda request: PlainTextResponse("ok")),
        ],
        lifespan=_both(server, open_server),
    )
    return open_server, app


def _both(*servers: SignalRServer) -> Any:
    from contextlib import AsyncExitStack, asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for s in servers:
                await stack.enter_async_context(s)
            yield

    return lifespan


def default_options(**overrides: Any) -> ServerOptions:
    base = ServerOptions(
        authenticate=authenticate,
        allow_origin=lambda origin: origin.startswith("http://127.0.0.1:"),
        detailed_errors=False,
    )
    return replace(base, **overrides)


@contextmanager
def running_server(ws: Any = WebSocketProtocol, **overrides: Any) -> Iterator[RunningServer]:
    """A server with `default_options` changed by `overrides`. ``ws``: uvicorn's WebSocket
    protocol, `WebSocketProtocol` (frames written straight to the socket) or ``"auto"`` (uvicorn's
    own: every frame through ASGI)."""
    metrics = CountingMetrics()
    options = default_options(**overrides)
    running = RunningServer(free_port(), SignalRServer(TestHub), metrics, options, ws)
    running.start()
    try:
        yield running
    finally:
        running.stop()
