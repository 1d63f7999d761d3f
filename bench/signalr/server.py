"""The server side of bench/signalr/run.py: a SignalR hub and a raw WebSocket endpoint on one uvicorn.

Run: ``python bench/signalr/server.py PORT [--outgoing-queue N]``. Prints ``ready`` when listening.

* ``/hub``: SignalR. ``SendEvent(streamId, event)`` parses the event into `Event` (the binder does it)
  and returns void; ``Flood(count, size)`` broadcasts to every connection; ``Stats()`` returns counters.
* ``/raw``: a bare Starlette WebSocket that parses the same JSON into the same `Event` and answers
  ``1`` per message: the ceiling of "one frame in, parse, one frame out" on this stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from streamport.cli._serve import tune_gc
from streamport.gateway.signalr import (
    Context,
    CountingMetrics,
    MetricEvent,
    ServerOptions,
    SignalRServer,
    WebSocketProtocol,
    hub_method,
)


class Event(msgspec.Struct):
    id: str
    timestamp: int
    value: str
    tags: dict[str, str] = {}


class RawMessage(msgspec.Struct):
    streamId: str
    event: Event


METRICS = CountingMetrics()
RECEIVED = {"events": 0}


class BenchHub:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @hub_method("SendEvent")
    async def send_event(self, stream_id: str, event: Event) -> None:
        RECEIVED["events"] += 1

    @hub_method("Flood")
    async def flood(self, count: int, size: int, pause: float) -> int:
        """Broadcast ``count`` messages of ``size`` bytes to every connection; ``pause`` s every 32."""
        total = 0
        payload = "x" * size
        for i in range(count):
            total += server.broadcast("Flood", i, payload)
            if i % 32 == 31:
                await asyncio.sleep(pause)
        return total

    @hub_method("Stats")
    async def stats(self) -> dict[str, Any]:
        return {
            "events": RECEIVED["events"],
            "pid": os.getpid(),
            "connections": len(server.connections),
            "overflow_closes": METRICS[MetricEvent.OVERFLOW_CLOSE],
        }


_RAW = msgspec.json.Decoder(RawMessage)


async def raw_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            _RAW.decode(text)
            await websocket.send_text("1")
    except WebSocketDisconnect:
        pass


server: SignalRServer


def main() -> None:
    global server
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--outgoing-queue", type=int, default=1024)
    args = parser.parse_args()
    server = SignalRServer(
        BenchHub, ServerOptions(metrics=METRICS, outgoing_queue_messages=args.outgoing_queue)
    )
    app = Starlette(
        routes=[server.route("/hub"), WebSocketRoute("/raw", raw_endpoint)],
        lifespan=server.lifespan,
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        ws_ping_interval=None,
        log_level="warning",
        ws=WebSocketProtocol,  # as `streamport up`; the raw endpoint does not use its extension
    )
    uv = uvicorn.Server(config)
    tune_gc()  # the same collector settings as the gateway: the ratio compares code, not settings

    async def run() -> None:
        task = asyncio.create_task(uv.serve())
        while not uv.started:
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
