"""The real gateway for bench/signalr/run.py: ``create_app`` on the embedded broker, auth off on
loopback, uvicorn and the garbage collector configured as ``streamport up`` does.
Run: ``python bench/signalr/gateway.py PORT DATA_DIR``; prints ``ready`` when listening."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from streamport.broker.embedded import EmbeddedBroker
from streamport.cli._serve import tune_gc
from streamport.gateway.app import create_app
from streamport.gateway.signalr import WebSocketProtocol
from streamport.settings import Settings


class _Ready(uvicorn.Server):
    async def startup(self, sockets: object = None) -> None:
        await super().startup(sockets)  # type: ignore[arg-type]
        print("ready", flush=True)


def main() -> None:
    port, data_dir = int(sys.argv[1]), Path(sys.argv[2])
    settings = Settings(data_dir=data_dir, auth=False)
    app = create_app(settings, EmbeddedBroker(data_dir / "log"))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_ping_interval=None,
        access_log=False,
        loop="uvloop",
        ws=WebSocketProtocol,  # as `streamport up`
    )
    tune_gc()  # as `streamport up`
    _Ready(config).run()


if __name__ == "__main__":
    main()
