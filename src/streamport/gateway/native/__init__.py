"""The gateway side of the native SDK protocol: one WebSocket per client at ``/sdk/ws``.

The SDK (``streamport.client.StreamingClient``) produces with acknowledgements and consumes with
consumer groups through it; ``docs/native-protocol.md`` describes the frames. The token comes
from ``Authorization: Bearer`` or the ``access_token`` query parameter; scopes are checked per
topic (``write:`` to produce, ``read:`` to subscribe).

Example::

    routes = [native.route(), ...]
"""

from __future__ import annotations

import msgspec
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from streamport.errors import AuthError
from streamport.gateway.auth import ANONYMOUS_ADMIN, Principal, bearer_token
from streamport.gateway.native._connection import Connection, failure
from streamport.gateway.state import GatewayState
from streamport.model.native_frames import Done

__all__ = ["PATH", "endpoint", "route"]

PATH = "/sdk/ws"
_POLICY_VIOLATION = 1008


def _principal(websocket: WebSocket, state: GatewayState) -> Principal:
    if not state.settings.auth:
        return ANONYMOUS_ADMIN
    token = bearer_token(websocket.headers.get("authorization"))
    token = token or websocket.query_params.get("access_token")
    return state.tokens.authenticate(token)


async def endpoint(websocket: WebSocket) -> None:
    """Accept, authenticate (a ``done`` reply with id 0 welcomes), then serve the connection."""
    state: GatewayState = websocket.app.state.gateway
    use_json = websocket.query_params.get("format", "msgpack") == "json"
    await websocket.accept()
    try:
        principal = _principal(websocket, state)
    except AuthError as exc:
        reply = failure(0, exc)
        if use_json:
            await websocket.send_text(msgspec.json.encode(reply).decode())
        else:
            await websocket.send_bytes(msgspec.msgpack.encode(reply))
        await websocket.close(_POLICY_VIOLATION, reason=str(exc)[:120])
        return
    connection = Connection(websocket, state, principal, json=use_json)
    await connection.send(Done(0))
    await connection.serve()


def route() -> WebSocketRoute:
    """The route to mount in the gateway app (the state is read from ``app.state.gateway``)."""
    return WebSocketRoute(PATH, endpoint)
