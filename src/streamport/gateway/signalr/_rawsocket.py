"""Writing WebSocket frames straight to the socket: the fast path of the WebSocket transport.

Through ASGI every ``websocket.send`` goes down a chain of coroutines (Starlette's WebSocket and
exception wrappers, the server's ``send``) and is framed once per connection. For a fan-out that
sends the same bytes to hundreds of connections that chain costs far more than the write itself.
So the server may offer, in the ASGI scope, the extension ``streamport.websocket.raw``: an object
with the `RawSocket` methods, which the WebSocket transport uses (when present) to write frames it
built itself, synchronously, from whatever code produced the data. The frame of a broadcast is
built once and written to every receiving connection as is (server frames are not masked).

`WebSocketProtocol` is a uvicorn WebSocket protocol (the default sans-I/O one of uvicorn with the
`websockets` library) that offers the extension. Run uvicorn with ``ws=WebSocketProtocol``
(``streamport up`` does); with any other server or protocol the transport falls back to ASGI sends.

Frames written this way are complete, unfragmented and uncompressed. With permessage-deflate
negotiated that is still valid (RFC 7692 section 6: a message without RSV1 is not compressed);
the server's own frames (pings, close) stay with uvicorn and are never interleaved inside ours
because every write is one whole frame, on the event loop's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

RAW_EXTENSION = "streamport.websocket.raw"

_TEXT = 0x81  # FIN + opcode 1
_BINARY = 0x82  # FIN + opcode 2


def ws_frame(payload: bytes, binary: bool) -> bytes:
    """One complete, unmasked WebSocket data frame (a server's frame) carrying `payload`."""
    n = len(payload)
    first = _BINARY if binary else _TEXT
    if n < 126:
        header = bytes((first, n))
    elif n < 65536:
        header = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    return header + payload


class RawSocket(Protocol):
    """What the transport needs from ``scope["extensions"]["streamport.websocket.raw"]``."""

    def writable(self) -> bool:
        """True while the socket's write buffer is below its high-water mark."""

    async def wait_writable(self) -> None:
        """Return once `writable` (or the socket is gone)."""

    def write(self, frame: bytes) -> bool:
        """Write one complete frame now; False (nothing written) once the socket is closing."""

    def receive_into(self, sink: Callable[[bytes], bool]) -> None:
        """From now on hand each data message's payload to `sink` instead of the ASGI receive
        queue (disconnects still arrive there). When `sink` returns False the socket stops being
        read until `resume_reading`."""

    def resume_reading(self) -> None:
        """Read the socket again (after `sink` returned False)."""


class _UvicornRaw:
    """`RawSocket` over one `WebSocketProtocol` connection."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self._protocol = protocol

    def receive_into(self, sink: Callable[[bytes], bool]) -> None:
        self._protocol.sink = sink

    def resume_reading(self) -> None:
        p = self._protocol
        if p.read_paused and not p.disconnected:
            p.read_paused = False
            p.transport.resume_reading()

    def writable(self) -> bool:
        return self._protocol.writable.is_set()

    async def wait_writable(self) -> None:
        await self._protocol.writable.wait()

    def write(self, frame: bytes) -> bool:
        p = self._protocol
        if (
            not p.handshake_complete
            or p.close_sent
            or p.disconnected
            or p.initial_response is not None
            or p.transport.is_closing()
        ):
            return False
        p.transport.write(frame)
        return True


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the ``streamport.websocket.raw`` extension.

    ``uvicorn.Config(app, ws=WebSocketProtocol, ...)``; everything else behaves as uvicorn's own.
    """

    sink: Callable[[bytes], bool] | None = None  # set by `RawSocket.receive_into`

    def send_receive_event_to_app(self) -> None:
        sink = self.sink
        if sink is None or self.close_sent:
            super().send_receive_event_to_app()
            return
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.curr_msg_data_type == "text":
            try:
                data.decode()
            except UnicodeDecodeError:
                super().send_receive_event_to_app()  # uvicorn closes with 1007, as without us
                return
        self.frames = []
        if not sink(data if type(data) is bytes else bytes(data)) and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        # the ASGI task is created but has not run yet: it sees the extension from the start
        if scope is not None and not self.close_sent:
            scope["extensions"][RAW_EXTENSION] = _UvicornRaw(self)


def raw_socket(scope: Any) -> RawSocket | None:
    """The scope's `RawSocket`, if the server offers one."""
    extensions = scope.get("extensions") or {}
    raw: RawSocket | None = extensions.get(RAW_EXTENSION)
    return raw


__all__ = ["RAW_EXTENSION", "RawSocket", "WebSocketProtocol", "raw_socket", "ws_frame"]
