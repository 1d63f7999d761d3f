"""Reader-hub fan-out: 500 reader connections on one topic while 1,000 events/s are written.

Three processes: the gateway (``create_app`` on uvicorn, embedded broker, auth off on loopback),
the readers (raw ``websockets`` speaking SignalR JSON; each invokes ``SubscribeToEvent(topic, "*",
"*")``), and this process, which writes 1,000 events/s through the writer hub (``SendEventData``
from 20 connections, since a hub connection runs one invocation at a time as ASP.NET does; each
event's value carries its send time). Reported: deliveries/s and p50/p99/max latency from the
writer's send to a reader's receipt (all on one machine, one clock).

Reference figure: the target is p99 < 50 ms on the embedded broker (500 x 1,000 = 500,000
deliveries/s expected). Run: ``python bench/signalr/fanout.py [--readers 500] [--rate 1000]
[--seconds 10]`` (under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

RS = "\x1e"
TOPIC = "bench-fanout"
TARGET_P99_MS = 50.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the gateway process --------------------------------------------------------------------------


def serve(port: int, data_dir: str) -> None:
    import uvicorn

    from streamport.broker.embedded import EmbeddedBroker
    from streamport.gateway.app import create_app
    from streamport.settings import Settings

    settings = Settings(data_dir=Path(data_dir), auth=False, host="127.0.0.1", port=port)
    app = create_app(settings, EmbeddedBroker(Path(data_dir) / "log"))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_ping_interval=None,
        access_log=False,
    )


# -- the readers process --------------------------------------------------------------------------


async def handshake(ws: websockets.ClientConnection) -> None:
    await ws.send('{"protocol":"json","version":1}' + RS)
    reply = await ws.recv()
    assert reply.startswith("{}"), reply


async def reader(
    url: str, ready: asyncio.Event, latencies: list[float], stop: asyncio.Event
) -> int:
    received = 0
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        await handshake(ws)
        msg = {
            "type": 1,
            "invocationId": "1",
            "target": "SubscribeToEvent",
            "arguments": [TOPIC, "*", "*"],
        }
        await ws.send(json.dumps(msg) + RS)
        while True:
            frame = await ws.recv()
            if '"invocationId":"1"' in frame:
                assert '"error"' not in frame, frame
                break
        ready.set()
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.time_ns()
            for part in str(frame).split(RS):
                if '"EventDataReceived"' in part:
                    sent = int(json.loads(part)["arguments"][0]["value"])
                    latencies.append((now - sent) / 1e6)
                    received += 1
            if '"type":6' in frame:
                await ws.send('{"type":6}' + RS)
    return received


async def readers_main(url: str, count: int, seconds: float) -> None:
    latencies: list[float] = []
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(count)]
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(reader(url, readies[i], latencies, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.gather(*(r.wait() for r in readies))
    print("ready", flush=True)
    await asyncio.sleep(seconds)
    stop.set()
    counts = await asyncio.gather(*tasks)
    print(json.dumps({"received": sum(counts), "latencies": latencies}), flush=True)


# -- this process: the writer and the report ------------------------------------------------------


async def write(url: str, rate: int, seconds: float) -> int:
    sent = 0
    async with websockets.connect(url, ping_interval=None) as ws:
        await handshake(ws)
        create = {
            "type": 1,
            "invocationId": "c",
            "target": "CreateStream",
            "arguments": [TOPIC, {}],
        }
        await ws.send(json.dumps(create) + RS)
        stream_id = json.loads(str(await ws.recv()).split(RS)[0])["result"]["streamId"]

        async def drain() -> None:
            async for _ in ws:  # completions; not awaited one by one so the rate holds
                pass

        drainer = asyncio.create_task(drain())
        start = time.monotonic()
        per_tick = 1
        tick = 1.0 / rate
        while time.monotonic() - start < seconds:
            frames = []
            for _ in range(per_tick):
                sent += 1
                event = {"id": "E", "timestamp": time.time_ns(), "value": str(time.time_ns())}
                frames.append(
                    json.dumps(
                        {
                            "type": 1,
                            "invocationId": str(sent),
                            "target": "SendEventData",
                            "arguments": [TOPIC, stream_id, [event]],
                        }
                    )
                    + RS
                )
            await ws.send("".join(frames))
            next_at = start + (sent / per_tick) * tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.sleep(1.0)
        drainer.cancel()
    return sent


async def write_all(url: str, rate: int, writers: int, seconds: float) -> int:
    counts = await asyncio.gather(*(write(url, rate // writers, seconds) for _ in range(writers)))
    return sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--writers", type=int, default=20, help="writer connections (a hub runs one call at a time)"
    )
    args = parser.parse_args()
    port = free_port()
    base = f"ws://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path.cwd() / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, __file__, "serve", str(port), tmp], env=env)
        try:
            deadline = time.monotonic() + 30
            import httpx

            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.1)
            httpx.post(f"http://127.0.0.1:{port}/api/topics", json={"name": TOPIC})
            readers = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "readers",
                    f"{base}/reader/hub",
                    str(args.readers),
                    str(args.seconds + 3),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            assert readers.stdout is not None
            line = readers.stdout.readline()
            assert line.strip() == "ready", line
            sent = asyncio.run(
                write_all(f"{base}/writer/hub", args.rate, args.writers, args.seconds)
            )
            result = json.loads(readers.stdout.readline())
            readers.wait(60)
        finally:
            server.terminate()
            server.wait(30)
    latencies = sorted(result["latencies"])
    expected = sent * args.readers
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"readers {args.readers}, events written {sent} ({args.rate}/s for {args.seconds:.0f} s)")
    print(
        f"deliveries {result['received']} of {expected} ({result['received'] / max(1, expected):.1%})"
    )
    print(
        f"deliveries/s {result['received'] / args.seconds:,.0f} (reference: {args.readers * args.rate:,}/s offered)"
    )
    print(
        f"latency write->receipt ms: p50 {q[49]:.1f}  p99 {q[98]:.1f}  max {latencies[-1] if latencies else 0:.1f}"
    )
    print(
        f"reference: target p99 < {TARGET_P99_MS:.0f} ms -> ratio p99/target {q[98] / TARGET_P99_MS:.2f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "readers":
        asyncio.run(readers_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    else:
        main()
