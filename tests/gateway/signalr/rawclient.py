"""A raw SignalR client over `websockets` and `httpx`: exact bytes in, exact bytes out."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect

RS = "\x1e"


async def negotiate(base_url: str, hub: str = "/hub", **params: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}{hub}/negotiate", params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


class RawConnection:
    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._pending: list[Any] = []

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message) + RS)

    async def send_msgpack(self, message: list[Any]) -> None:
        body = msgspec.msgpack.encode(message)
        prefix = bytearray()
        n = len(body)
        while True:
            byte = n & 0x7F
            n >>= 7
            prefix.append(byte | (0x80 if n else 0))
            if not n:
                break
        await self.ws.send(bytes(prefix) + body)

    async def recv(self, timeout: float = 10) -> Any:
        """The next hub message (Pings included), decoded."""
        from asyncio import timeout as deadline

        while not self._pending:
            async with deadline(timeout):
                frame = await self.ws.recv()
            if isinstance(frame, str):
                self._pending += [json.loads(part) for part in frame.split(RS) if part]
            else:
                self._pending += _split_msgpack(frame)
        return self._pending.pop(0)

    async def recv_skip_pings(self, timeout: float = 10) -> Any:
        while True:
            message = await self.recv(timeout)
            if message not in ({"type": 6}, [6]):
                return message

    async def invoke(self, target: str, *args: Any, invocation_id: str = "1") -> Any:
        await self.send_json(
            {"type": 1, "invocationId": invocation_id, "target": target, "arguments": list(args)}
        )
        return await self.recv_skip_pings()


def _split_msgpack(data: bytes) -> list[Any]:
    out = []
    pos = 0
    while pos < len(data):
        length = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        out.append(msgspec.msgpack.decode(data[pos : pos + length]))
        pos += length
    return out


@asynccontextmanager
async def raw_connection(
    base_url: str,
    hub: str = "/hub",
    protocol: str = "json",
    handshake: bool = True,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[RawConnection]:
    body = await negotiate(base_url, hub, negotiateVersion="1")
    ws_url = base_url.replace("http://", "ws://") + f"{hub}?id={body['connectionToken']}"
    async with connect(ws_url, ping_interval=None, additional_headers=headers or {}) as ws:
        conn = RawConnection(ws, protocol)
        if handshake:
            await ws.send(json.dumps({"protocol": protocol, "version": 1}) + RS)
            reply = await ws.recv()
            raw = reply.encode() if isinstance(reply, str) else reply
            assert raw.startswith(b"{}\x1e"), raw
            rest = raw[3:]
            if rest:  # messages right behind the handshake reply
                if protocol == "json":
                    conn._pending += [json.loads(p) for p in rest.decode().split(RS) if p]
                else:
                    conn._pending += _split_msgpack(rest)
        yield conn


@asynccontextmanager
async def stalled_client(base_url: str, hub: str = "/hub") -> AsyncIterator[socket.socket]:
    """A WebSocket client that completes the SignalR handshake and then never reads a byte.

    A plain socket with a 16 KiB receive buffer (no autotuning): client libraries keep reading in the
    background, which would hide the stall.
    """
    body = await negotiate(base_url, hub, negotiateVersion="1")
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect((host, int(port)))
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {hub}?id={body['connectionToken']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            assert chunk, "the server closed during the upgrade"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response
        payload = b'{"protocol":"json","version":1}\x1e'
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        yield sock
    finally:
        sock.close()
