"""A SignalR server for ASGI: the ASP.NET Core SignalR wire protocol, usable by any Starlette app.

It knows nothing of streamport's data model: it could be published on its own. Clients: the official
``@microsoft/signalr`` (browser, Node; JSON and MessagePack), ``pysignalr`` and ``signalrcore``.
Served: negotiate v0/v1, WebSockets, Server-Sent Events, Long Polling, JSON and MessagePack hub
protocols, handshake versions 0-2, hub Pings, client/handshake timeouts, graceful Close, server-to-client
and client-to-server streams, bearer tokens (header or ``access_token`` query), CORS.
Not served: stateful reconnect, client results, groups (the app keeps its own sets of `Context`).

Writing a hub
-------------
A hub is a plain class. The server builds one per connection with ``hub_factory(context)``, after the
handshake. Its public ``async def`` methods are the hub methods, matched case-insensitively by name;
`hub_method` gives one a different wire name. Arguments are decoded straight into the annotated types
(msgspec: ``str``, ``int``, ``list[float]``, ``msgspec.Struct``, ``Any``...); a mismatch gives the
caller ASP.NET's binding error. A method's return value is the invocation's result (``-> None`` = void).
``raise HubError("text")`` sends ``text`` to the caller; other exceptions give a generic error (the
detail only with ``ServerOptions(detailed_errors=True)``). An ``async def`` generator is a
server-to-client stream; a parameter annotated ``AsyncIterator[T]`` receives a client-to-server stream.
Invocations of one connection run one at a time (streams run beside them). Optional hooks:
``async def on_connected(self)`` and ``async def on_disconnected(self, exc: BaseException | None)``.

    from streamport.gateway.signalr import Context, HubError, ServerOptions, SignalRServer

    class Chat:
        def __init__(self, ctx: Context) -> None:
            self.ctx = ctx

        async def on_connected(self) -> None:
            self.ctx.items["name"] = self.ctx.query.get("name", "anonymous")

        async def echo(self, text: str) -> str:      # connection.invoke("Echo", "hi") -> "hi"
            if not text:
                raise HubError("text is empty")
            return text

        async def shout(self, text: str) -> None:    # pushes to everybody, serialised once per protocol
            server.broadcast("Message", self.ctx.items["name"], text.upper())

    server = SignalRServer(Chat, ServerOptions(keep_alive_interval=15))
    app = Starlette(routes=[server.route("/hubs/chat")], lifespan=server.lifespan)
    uvicorn.run(app, ws_ping_interval=None)   # no WebSocket pings: signalrcore cannot answer them

`Context` is the hub's handle on its connection: ``connection_id``, ``principal`` (what the
``authenticate`` option returned), ``items``, ``headers``/``query`` of the request that opened the
transport, ``send(target, *args)`` (server push), ``send_prepared`` and ``abort()``.

Sending never waits: each connection has a bounded outgoing queue, and a client that lets it fill is
closed with an error (``MetricEvent.OVERFLOW_CLOSE``) so it never slows down the others. For fan-out, build
one `PreparedMessage` and call ``ctx.send_prepared(msg)`` per receiver (or `SignalRServer.broadcast`).
Under uvicorn, run with ``ws=WebSocketProtocol``: WebSocket frames are then written straight to the
socket (a broadcast's frame built once for all receivers) instead of through one ASGI send each.

See ``docs/signalr.md`` for options, authentication, CORS, metrics and the limits.
"""

from ._connection import (
    ClientResultError,
    ConnectionLost,
    ConnectionState,
    Context,
    PreparedBatch,
    PreparedMessage,
    Queued,
)
from ._framing import MessageTooLarge, ProtocolError
from ._hub import HubError, hub_method
from ._options import (
    Authenticator,
    AuthRequest,
    CountingMetrics,
    MetricEvent,
    Metrics,
    NullMetrics,
    ServerOptions,
    Transport,
)
from ._protocol import HubProtocol, JsonHubProtocol, MessagePackHubProtocol, TransferFormat
from ._rawsocket import RAW_EXTENSION, RawSocket, WebSocketProtocol
from ._server import HubRoute, SignalRServer

__all__ = [
    "RAW_EXTENSION",
    "AuthRequest",
    "Authenticator",
    "ClientResultError",
    "ConnectionLost",
    "ConnectionState",
    "Context",
    "CountingMetrics",
    "HubError",
    "HubProtocol",
    "HubRoute",
    "JsonHubProtocol",
    "MessagePackHubProtocol",
    "MessageTooLarge",
    "MetricEvent",
    "Metrics",
    "NullMetrics",
    "PreparedBatch",
    "PreparedMessage",
    "ProtocolError",
    "Queued",
    "RawSocket",
    "ServerOptions",
    "SignalRServer",
    "TransferFormat",
    "Transport",
    "WebSocketProtocol",
    "hub_method",
]
