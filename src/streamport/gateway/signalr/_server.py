"""The ASGI app of one hub: routing, negotiate, authentication, CORS and the connection registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import msgspec
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from streamport.errors import AuthError, Forbidden

from ._connection import Connection, ConnectionState, Context, PreparedMessage, Queued
from ._options import AuthRequest, MetricEvent, ServerOptions, Transport
from ._protocol import HubProtocol, JsonHubProtocol, MessagePackHubProtocol, TransferFormat
from ._transports import scope_headers, serve_sse, serve_websocket

log = logging.getLogger("streamport.gateway.signalr")

_CORS_ALLOW_HEADERS = "x-requested-with, x-signalr-user-agent, authorization, content-type"
_LP_HEADERS = {
    "cache-control": "no-cache, no-store",
    "pragma": "no-cache",
    "expires": "Thu, 01 Jan 1970 00:00:00 GMT",
}


class _NotStarted(RuntimeError):
    pass


class SignalRServer:
    """An ASGI app serving one SignalR hub: ``{path}/negotiate`` and ``{path}`` (all three transports).

    ``hub_factory`` is called once per connection, after the handshake, with the connection's `Context`;
    it returns the hub object whose public ``async def`` methods the client may invoke.

    Example::

        class Chat:
            def __init__(self, ctx: Context) -> None:
                self.ctx = ctx

            async def send(self, text: str) -> None:
                server.broadcast("Message", self.ctx.connection_id, text)

        server = SignalRServer(Chat, ServerOptions(allow_origin=lambda o: o == "https://app"))
        app = Starlette(routes=[server.route("/chat")], lifespan=server.lifespan)
        # uvicorn.run(app, ws_ping_interval=None)  -- SignalR keeps alive with hub Pings

    The server owns a task group for connection tasks: run it as the app's lifespan (above),
    or ``async with server:``. Standalone (``uvicorn.run(server)``) it handles the lifespan itself.
    """

    def __init__(
        self,
        hub_factory: Callable[[Context], object],
        options: ServerOptions | None = None,
        *,
        protocols: Sequence[HubProtocol] | None = None,
    ) -> None:
        self.options = options or ServerOptions()
        self._hub_factory = hub_factory
        chosen = (
            protocols if protocols is not None else (JsonHubProtocol(), MessagePackHubProtocol())
        )
        self.protocols: dict[str, HubProtocol] = {p.name: p for p in chosen}
        self._by_token: dict[str, Connection] = {}
        self._by_id: dict[str, Connection] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._negotiate_body: dict[int, list[dict[str, Any]]] = {}
        # invocations received whose hub method has not started, over all connections
        self.queued = Queued()

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            return
        started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner = asyncio.create_task(self._supervise(started))
        await started.wait()

    async def aclose(self) -> None:
        """Close every connection (Close message, allowReconnect) and wait for their tasks."""
        if self._runner is None or self._stopping is None:
            return
        for conn in list(self._by_token.values()):
            conn.close()
        self._stopping.set()
        runner, self._runner = self._runner, None
        await runner

    async def __aenter__(self) -> SignalRServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """For ``Starlette(lifespan=server.lifespan)``: runs the server for the app's lifetime."""
        async with self:
            yield

    async def _supervise(self, started: asyncio.Event) -> None:
        assert self._stopping is not None
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            started.set()
            sweeper = tasks.create_task(self._sweep())
            await self._stopping.wait()
            sweeper.cancel()
        self._tasks = None

    async def _sweep(self) -> None:
        """The one timer loop: per-connection timers, and disposal of connections without a
        transport for ``disconnect_timeout`` (negotiated but unused, idle long polling)."""
        opts = self.options
        shortest = min(
            opts.keep_alive_interval,
            opts.client_timeout,
            opts.handshake_timeout,
            opts.disconnect_timeout,
        )
        period = min(1.0, shortest / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self._by_token.values()):
                conn.check_timers(now)
                if conn.active_requests:
                    continue
                if now - conn.idle_since >= opts.disconnect_timeout:
                    if conn.state is not ConnectionState.CLOSED:
                        opts.metrics.count(MetricEvent.EXPIRED)
                    conn.close(send_close=False)
                    self._forget(conn)

    def _spawn_connection(self, conn: Connection) -> None:
        if self._tasks is None:
            raise _NotStarted
        self._tasks.create_task(conn.run())

    def _forget(self, conn: Connection) -> None:
        self._by_token.pop(conn.token, None)
        self._by_id.pop(conn.connection_id, None)

    # -- the app's API ----------------------------------------------------------------------------------
    def route(self, path: str) -> Mount:
        """A Starlette route serving this hub at ``path`` and ``path/negotiate`` (no redirect on ``path``)."""
        return HubRoute(path, self)

    @property
    def connections(self) -> list[Context]:
        """Contexts of the connections that completed the handshake."""
        return [c.context for c in self._by_id.values() if c.state is ConnectionState.CONNECTED]

    def get(self, connection_id: str) -> Context | None:
        conn = self._by_id.get(connection_id)
        return conn.context if conn is not None else None

    def broadcast(self, target: str, *args: Any, to: Sequence[Context] | None = None) -> int:
        """Send ``target(*args)`` to ``to`` (default: every connection), serialised once per protocol.

        Never waits: a connection whose outgoing queue is full is closed instead. Returns how many
        connections took the message.
        """
        message = PreparedMessage(target, args)
        receivers = to if to is not None else self.connections
        return sum(1 for ctx in receivers if ctx.send_prepared(message))

    # -- ASGI -------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = path.rstrip("/")
        try:
            if kind == "websocket":
                if path == "":
                    await self._websocket(scope, receive, send)
                else:
                    await WebSocket(scope, receive, send).close(1008)
                return
            if path == "/negotiate":
                await self._http(self._negotiate, scope, receive, send)
            elif path == "":
                await self._http(self._hub_endpoint, scope, receive, send)
            else:
                await Response("Not Found", 404, media_type="text/plain")(scope, receive, send)
        except _NotStarted:
            body = "SignalR server not started: run it as the app's lifespan or in `async with`"
            log.error(body)
            if kind == "http":
                await Response(body, 503, media_type="text/plain")(scope, receive, send)
            else:
                await WebSocket(scope, receive, send).close(1011)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- CORS and authentication ------------------------------------------------------------------------
    def _cors_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        origin = headers.get("origin")
        allow = self.options.allow_origin
        if origin is None or allow is None or not allow(origin):
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "vary": "Origin",
        }

    async def _authenticate(
        self, headers: Mapping[str, str], query: Mapping[str, str], path: str
    ) -> object:
        """The principal, or raises `AuthError`. Without an authenticate callback: None."""
        auth = self.options.authenticate
        if auth is None:
            return None
        token: str | None = None
        header = headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            token = header[7:].strip() or None
        if token is None:
            token = query.get("access_token") or None
        try:
            return await auth(AuthRequest(token, headers, query, path))
        except AuthError:
            self.options.metrics.count(MetricEvent.AUTH_FAILED)
            raise

    @staticmethod
    def _query(scope: Scope) -> dict[str, str]:
        # ASP.NET reads query keys case-insensitively
        params = QueryParams(scope.get("query_string", b""))
        return {k.lower(): v for k, v in params.items()}

    async def _http(
        self,
        handler: Callable[[Request, dict[str, str], dict[str, str], Send], Any],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        request = Request(scope, receive)
        headers = scope_headers(scope)
        cors = self._cors_headers(headers)
        if request.method == "OPTIONS":
            response = self._preflight(headers, cors)
        else:
            response = await handler(request, headers, cors, send)
        if response is not None:
            response.headers.update(cors)
            await response(scope, receive, send)

    def _preflight(self, headers: Mapping[str, str], cors: dict[str, str]) -> Response:
        if not cors:
            return Response("Origin not allowed", 403, media_type="text/plain")
        requested = headers.get("access-control-request-headers")
        return Response(
            status_code=204,
            headers={
                "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
                "access-control-allow-headers": requested or _CORS_ALLOW_HEADERS,
                "access-control-max-age": "600",
            },
        )

    # -- negotiate --------------------------------------------------------------------------------------
    def _transports_json(self) -> list[dict[str, Any]]:
        formats = [f.value for f in (TransferFormat.TEXT, TransferFormat.BINARY)]
        out = []
        for transport in (
            Transport.WEB_SOCKETS,
            Transport.SERVER_SENT_EVENTS,
            Transport.LONG_POLLING,
        ):
            if transport in self.options.transports:
                fmts = ["Text"] if transport is Transport.SERVER_SENT_EVENTS else formats
                out.append({"transport": transport.value, "transferFormats": fmts})
        return out

    async def _negotiate(
        self, request: Request, headers: dict[str, str], cors: dict[str, str], send: Send
    ) -> Response:
        if request.method != "POST":
            return Response("Method Not Allowed", 405, media_type="text/plain")
        query = self._query(request.scope)
        try:
            principal = await self._authenticate(headers, query, request.url.path)
        except Forbidden:
            return Response(status_code=403)
        except AuthError:
            return Response(status_code=401)
        raw_version = query.get("negotiateversion")
        if raw_version is None:
            version = 0
        else:
            try:
                requested = int(raw_version)
            except ValueError:
                return _json({"error": "The client requested a non-integer protocol version."})
            if requested < self.options.min_negotiate_version:
                return _json(
                    {
                        "error": f"The client requested version '{requested}', but the server "
                        "does not support this version."
                    }
                )
            version = 1 if requested >= 1 else 0
        conn = self._new_connection(principal, version)
        body: dict[str, Any] = {"negotiateVersion": version, "connectionId": conn.connection_id}
        if version >= 1:
            body["connectionToken"] = conn.token
        body["availableTransports"] = self._transports_json()
        return _json(body)

    def _new_connection(self, principal: object, version: int) -> Connection:
        connection_id = secrets.token_urlsafe(16)  # 22 URL-safe chars, like ASP.NET
        token = secrets.token_urlsafe(16) if version >= 1 else connection_id
        conn = Connection(
            connection_id,
            token,
            principal,
            self.options,
            self.protocols,
            self._hub_factory,
            self.queued,
        )
        self._by_token[token] = conn
        self._by_id[connection_id] = conn
        return conn

    # -- the hub endpoint -------------------------------------------------------------------------------
    def _check_transport(self, conn: Connection, transport: Transport) -> Response | None:
        if transport not in self.options.transports:
            return _text(f"{transport.value} transport not supported by this end point type", 404)
        if conn.transport is None:
            return None
        if conn.transport is not transport:
            return _text("Cannot change transports mid-connection", 400)
        if transport is not Transport.LONG_POLLING and conn.active_requests:
            return Response(status_code=409)
        if transport is not Transport.LONG_POLLING:
            return Response(status_code=404)  # a finished WebSocket / SSE connection is gone
        return None

    async def _hub_endpoint(
        self, request: Request, headers: dict[str, str], cors: dict[str, str], send: Send
    ) -> Response | None:
        method = request.method
        if method not in ("GET", "POST", "DELETE"):
            return _text("Method Not Allowed", 405)
        query = self._query(request.scope)
        token = query.get("id")
        if not token:
            return _text("Connection ID required", 400)
        try:
            await self._authenticate(headers, query, request.url.path)
        except Forbidden:
            return Response(status_code=403)
        except AuthError:
            return Response(status_code=401)
        conn = self._by_token.get(token)
        if conn is None:
            return _text("No Connection with that ID", 404)
        if method == "POST":
            return await self._post(conn, request)
        if method == "DELETE":
            if conn.transport is not Transport.LONG_POLLING:
                return _text("Cannot terminate this connection using the DELETE endpoint.", 400)
            conn.close(send_close=False)
            self._forget(conn)
            return Response(status_code=202, media_type="text/plain")
        if "text/event-stream" in headers.get("accept", ""):
            problem = self._check_transport(conn, Transport.SERVER_SENT_EVENTS)
            if problem is not None:
                return problem
            await self._run_sse(conn, request, headers, query, cors, send)
            return None
        problem = self._check_transport(conn, Transport.LONG_POLLING)
        if problem is not None:
            return problem
        return await self._poll(conn, headers, query)

    async def _post(self, conn: Connection, request: Request) -> Response:
        if conn.transport is Transport.WEB_SOCKETS:
            return _text("POST requests are not allowed for WebSocket connections.", 405)
        if conn.state is ConnectionState.CLOSED:
            return Response(status_code=404)
        async for chunk in request.stream():
            if chunk:
                await conn.receive(chunk)
        return Response(status_code=200)

    async def _run_sse(
        self,
        conn: Connection,
        request: Request,
        headers: dict[str, str],
        query: dict[str, str],
        cors: dict[str, str],
        send: Send,
    ) -> None:
        conn.start_transport(Transport.SERVER_SENT_EVENTS, headers, query)
        self._spawn_connection(conn)
        conn.active_requests += 1
        try:
            extra = [(k.encode(), v.encode()) for k, v in cors.items()]
            await serve_sse(conn, request.receive, send, extra)
        finally:
            conn.active_requests -= 1
            conn.close(send_close=False)
            self._forget(conn)

    async def _poll(
        self, conn: Connection, headers: dict[str, str], query: dict[str, str]
    ) -> Response:
        if conn.transport is None:
            # the first poll answers at once; the connection (and its handshake timer) starts now
            conn.start_transport(Transport.LONG_POLLING, headers, query)
            self._spawn_connection(conn)
            conn.idle_since = time.monotonic()
            return _lp_response(b"", 200)
        conn.active_requests += 1
        try:
            # signalrcore handles only the first message of a poll body; browsers and Node take batches
            single = headers.get("x-requested-with") != "XMLHttpRequest"
            data = await conn.poll(self.options.poll_timeout, single)
        finally:
            conn.active_requests -= 1
            conn.idle_since = time.monotonic()
        if data is None:
            return _lp_response(b"", 204)
        return _lp_response(data, 200)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        headers = scope_headers(scope)
        origin = headers.get("origin")
        allow = self.options.allow_origin
        if origin is not None and allow is not None and not allow(origin):
            await _deny(websocket, _text("Origin not allowed", 403))
            return
        if Transport.WEB_SOCKETS not in self.options.transports:
            text = "WebSockets transport not supported by this end point type"
            await _deny(websocket, _text(text, 404))
            return
        query = self._query(scope)
        try:
            principal = await self._authenticate(headers, query, scope["path"])
        except Forbidden:
            await _deny(websocket, Response(status_code=403))
            return
        except AuthError:
            await _deny(websocket, Response(status_code=401))
            return
        token = query.get("id")
        if token:
            conn = self._by_token.get(token)
            if conn is None:
                await _deny(websocket, _text("No Connection with that ID", 404))
                return
            problem = self._check_transport(conn, Transport.WEB_SOCKETS)
            if problem is not None:
                await _deny(websocket, problem)
                return
        else:
            # skipNegotiation: the connection is born at the upgrade
            conn = self._new_connection(principal, 1)
        conn.start_transport(Transport.WEB_SOCKETS, headers, query)
        self._spawn_connection(conn)
        conn.active_requests += 1
        try:
            await serve_websocket(conn, websocket)
        finally:
            conn.active_requests -= 1
            conn.close(send_close=False)
            self._forget(conn)


class HubRoute(Mount):
    """A `Mount` that also serves the bare path: the JS client connects to ``/hub``, not ``/hub/``."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app=app)

    def matches(self, scope: Scope) -> tuple[Any, Scope]:
        match, child = super().matches(scope)
        if child or scope["type"] not in ("http", "websocket"):
            return match, child
        root_path = scope.get("root_path", "")
        path: str = scope["path"]
        route_path = path[len(root_path) :] if root_path and path.startswith(root_path) else path
        if route_path == self.path:
            return Match.FULL, {
                "path_params": dict(scope.get("path_params", {})),
                "app_root_path": scope.get("app_root_path", root_path),
                "root_path": root_path + route_path,
                "endpoint": self.app,
            }
        return match, child


async def _deny(websocket: WebSocket, response: Response) -> None:
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:  # the server lacks the denial extension: a plain refusal
        with contextlib.suppress(RuntimeError):
            await websocket.close(1008)


def _text(body: str, status: int) -> Response:
    return Response(body, status, media_type="text/plain")


def _json(body: dict[str, Any]) -> Response:
    return Response(msgspec.json.encode(body), 200, media_type="application/json")


def _lp_response(body: bytes, status: int) -> Response:
    return Response(body, status, headers=_LP_HEADERS, media_type="application/octet-stream")
