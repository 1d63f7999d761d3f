"""The three transports. They move bytes between the ASGI server and a `Connection`, nothing more.

* WebSockets: one reader and one writer task; JSON goes out in Text frames, MessagePack in Binary frames.
* Server-Sent Events: a streaming response of ``data:`` events (text only); client sends come by POST.
* Long Polling: each GET takes what is queued (waiting up to ``poll_timeout``); sends come by POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ._connection import Connection
from ._protocol import TransferFormat
from ._rawsocket import raw_socket

log = logging.getLogger("streamport.gateway.signalr")

_NO_CACHE_SSE = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache,no-store"),
    (b"pragma", b"no-cache"),
    (b"content-encoding", b"identity"),
    (b"x-accel-buffering", b"no"),  # ask proxies (nginx) not to buffer the event stream
]


async def _cut_after(conn: Connection, writer: asyncio.Task[None], grace: float) -> None:
    """Once the connection is closed, give the writer ``grace`` seconds to flush, then cut it.

    A client that stopped reading leaves the writer stuck in a send; cutting it frees the connection.
    """
    await conn.closed_event.wait()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            await asyncio.shield(writer)
    writer.cancel()


async def serve_websocket(conn: Connection, websocket: WebSocket) -> None:
    """Run a WebSocket transport until the connection or the socket closes.

    With the server's ``streamport.websocket.raw`` extension (`_rawsocket.py`) frames are written
    straight to the socket by whoever queues them (the writer task only waits for room), and the
    messages that arrive go straight into the connection's incoming queue (the reader task only
    sees the disconnect)."""
    raw = raw_socket(websocket.scope)
    if raw is not None:
        conn.attach_raw(raw)  # before the accept: every data frame goes to the connection
    await websocket.accept()

    async def read() -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                data = text.encode() if text is not None else message.get("bytes") or b""
                await conn.receive(data)
        except OSError as exc:  # the socket failed under us: same as a disconnect
            log.debug("connection %s: WebSocket read failed: %r", conn.connection_id, exc)
        conn.transport_lost()

    async def write() -> None:
        binary = False
        try:
            if raw is not None:
                await conn.drain_raw()
            else:
                while (batch := await conn.next_batch()) is not None:
                    if conn.protocol is not None:
                        binary = conn.protocol.transfer_format is TransferFormat.BINARY
                    if binary:
                        await websocket.send_bytes(batch)
                    else:
                        await websocket.send_text(batch.decode())
            if websocket.application_state is WebSocketState.CONNECTED:
                await websocket.close(1000)
        except (OSError, RuntimeError, WebSocketDisconnect) as exc:  # the socket is gone
            log.debug("connection %s: WebSocket write failed: %r", conn.connection_id, exc)
            conn.transport_lost()

    async with asyncio.TaskGroup() as tasks:
        reader = tasks.create_task(read())
        writer = tasks.create_task(write())
        cutter = tasks.create_task(_cut_after(conn, writer, conn.options.close_grace))
        try:
            await asyncio.wait([writer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            cutter.cancel()
            conn.transport_lost()
    # the TaskGroup re-raises reader/writer failures other than cancellation


def _sse_event(payload: bytes) -> bytes:
    lines = payload.split(b"\n")
    return b"".join(b"data: " + line.rstrip(b"\r") + b"\r\n" for line in lines) + b"\r\n"


async def serve_sse(
    conn: Connection, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
) -> None:
    """Run a Server-Sent Events transport as one streaming response."""
    await send({"type": "http.response.start", "status": 200, "headers": _NO_CACHE_SSE + headers})
    # an initial comment: browsers fire `open` only once data arrived, and the JS client waits for it
    await send({"type": "http.response.body", "body": b":\r\n", "more_body": True})

    async def watch() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                conn.transport_lost()
                return

    async def write() -> None:
        try:
            while True:
                batch = await conn.next_batch()
                if batch is None:
                    break
                event = _sse_event(batch)
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError as exc:
            log.debug("connection %s: SSE write failed: %r", conn.connection_id, exc)
            conn.transport_lost()

    async with asyncio.TaskGroup() as tasks:
        watcher = tasks.create_task(watch())
        writer = tasks.create_task(write())
        cutter = tasks.create_task(_cut_after(conn, writer, conn.options.close_grace))
        try:
            await asyncio.wait([writer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            cutter.cancel()
            conn.transport_lost()


def scope_headers(scope: Scope) -> dict[str, str]:
    """Request headers as a lower-cased dict (the last value wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
