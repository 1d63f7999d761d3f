"""SignalR server benchmarks. Run: ``python bench/signalr/run.py [--seconds 2] [--rounds 5]``.

Every server runs on uvicorn with `streamport.gateway.signalr.WebSocketProtocol`, as ``streamport
up`` does (the SignalR transport writes its frames straight to the socket; the raw endpoint below
does not use that and sends through ASGI, as any Starlette endpoint).

(a) Invocations per second of a hub method that parses one event (``SendEvent(streamId, event)``, the
    event bound into a msgspec Struct), over ONE WebSocket from this process, next to a raw Starlette
    WebSocket endpoint on the same uvicorn that parses the same JSON into the same Struct and answers
    each message. Both are pipelined the same way (up to ``--window`` requests in flight, one message
    per frame). Also reported: the server's CPU time per request (from /proc), which does not depend
    on whether this client process or the server is the bottleneck on a small machine.

    The issue's figure is the third contender: the real Quix writer hub of the gateway
    (``bench/signalr/gateway.py``: embedded broker, auth off) answering ``SendEventData`` invocations,
    each completed only after the event is durable (the hub runs up to 64 invocations of a
    connection at once, writes of one stream batched in order; see docs/hubs.md).

    The three contenders take turns, ``--rounds`` times. The machine is shared, so the figure is the
    ratio writer hub / raw *within each round* (the two ran seconds apart), and the verdict is on
    the median of those ratios; every round's ratio and the lowest one are printed too.

    The client is a few lines over the `websockets` library rather than pysignalr: pysignalr awaits
    each send and builds dataclasses and callbacks per message, so it would measure itself. The raw
    client writes the exact bytes the JS client writes (``{"type":1,"invocationId":"n",...}`` + RS).

(b) Fan-out through the Quix Reader hub: ``bench/signalr/fanout.py`` (it needs the gateway, its hubs
    and client processes), which `bench_fanout` runs with its defaults (``--fanout-rounds``
    rounds; ``python bench/signalr/fanout.py --help`` for its own knobs).

(c) Memory with one stalled reader among many: N readers and one client that never reads; the hub
    broadcasts far more data than the stalled client's outgoing queue may hold. The server's peak RSS
    growth stays near the queue bound (it does not grow with what the stalled client missed), the
    stalled client is closed (overflow), and every other reader gets every message. The verdict
    ("bounded") requires all three, the growth below 4 queue bounds (at least 8 MiB: socket
    buffers, allocator slack) and below what the stalled client missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
RS = "\x1e"
EVENT = {
    "id": "lap-completed",
    "timestamp": 1717171717000000000,
    "value": '{"lap": 12, "driver": "VER", "time": 83.412}',
    "tags": {"session": "race", "car": "1"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, *args: str, script: str = "server.py") -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), str(self.port), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"bench server did not start: {line!r}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / 100.0

    def rss_mib(self, field: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(field)

    def reset_peak(self) -> None:
        # writing 5 to clear_refs resets VmHWM (Linux >= 4.0)
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def signalr_connect(port: int, path: str = "/hub") -> ClientConnection:
    async with httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{port}{path}/negotiate?negotiateVersion=1"
        body = (await http.post(url)).json()
    ws = await connect(
        f"ws://127.0.0.1:{port}{path}?id={body['connectionToken']}",
        ping_interval=None,
        max_size=None,
    )
    await ws.send('{"protocol":"json","version":1}' + RS)
    assert await ws.recv() == "{}" + RS
    return ws


async def invoke(ws: ClientConnection, target: str, *args: Any) -> Any:
    await ws.send(
        json.dumps({"type": 1, "invocationId": "x", "target": target, "arguments": list(args)}) + RS
    )
    while True:
        for part in str(await ws.recv()).split(RS):
            if part:
                message = json.loads(part)
                if message.get("invocationId") == "x":
                    return message.get("result")


async def pipeline(
    ws: ClientConnection, make: Any, replies_in: Any, seconds: float, window: int
) -> tuple[int, float]:
    """Send ``make(n)`` as fast as ``window`` allows for ``seconds``; count replies."""
    sent = done = 0
    room = asyncio.Event()
    room.set()
    stop_at = time.perf_counter() + seconds
    sending = True

    async def receive() -> None:
        nonlocal done
        while sending or done < sent:
            done += replies_in(await ws.recv())
            if sent - done < window:
                room.set()

    receiver = asyncio.create_task(receive())
    start = time.perf_counter()
    while time.perf_counter() < stop_at:
        if sent - done >= window:
            room.clear()
            await room.wait()
        await ws.send(make(sent))
        sent += 1
    sending = False
    await receiver
    return done, time.perf_counter() - start


async def bench_invocations(seconds: float, window: int, rounds: int) -> None:
    server = Server()
    gateway = Server(tempfile.mkdtemp(prefix="bench-gw-"), script="gateway.py")
    try:
        event = json.dumps(EVENT, separators=(",", ":"))
        raw_payload = '{"streamId":"stream-1","event":' + event + "}"
        head = '{"type":1,"invocationId":"'
        tail = '","target":"SendEvent","arguments":["stream-1",' + event + "]}" + RS
        results: dict[str, list[tuple[float, float]]] = {"raw": [], "signalr": [], "writer-hub": []}
        # The Quix writer hub: each SendEventData completes only once the event is durable.
        writer_tail = (
            '","target":"SendEventData","arguments":["bench","stream-1",[' + event + "]]}" + RS
        )
        for rnd in range(rounds):  # alternate: the machine is shared, so compare within a round
            for name in ("raw", "signalr", "writer-hub"):
                target = gateway if name == "writer-hub" else server
                if name == "raw":
                    ws = await connect(f"ws://127.0.0.1:{server.port}/raw", ping_interval=None)
                    make = lambda n: raw_payload  # noqa: E731
                    count_replies = lambda frame: 1  # noqa: E731
                elif name == "signalr":
                    ws = await signalr_connect(server.port)
                    make = lambda n: head + str(n) + tail  # noqa: E731
                    count_replies = lambda frame: frame.count(RS)  # noqa: E731
                else:
                    ws = await signalr_connect(gateway.port, "/writer/hub")
                    make = lambda n: head + str(n) + writer_tail  # noqa: E731
                    count_replies = lambda frame: frame.count('"type":3')  # noqa: E731
                cpu0 = target.cpu_seconds()
                done, elapsed = await pipeline(ws, make, count_replies, seconds, window)
                cpu = target.cpu_seconds() - cpu0
                await ws.close()
                rate, cpu_us = done / elapsed, cpu / done * 1e6
                results[name].append((rate, cpu_us))
                print(
                    f"  round {rnd + 1} {name:10s} {rate:10,.0f} req/s  "
                    f"server CPU {cpu_us:6.1f} us/req"
                )
            raw_rate = results["raw"][-1][0]
            print(
                f"  round {rnd + 1} ratios to raw: SignalR {results['signalr'][-1][0] / raw_rate:.2f}, "
                f"writer hub {results['writer-hub'][-1][0] / raw_rate:.2f}"
            )
        raw, hub = _median(results["raw"]), _median(results["signalr"])
        print(
            f"(a) raw WebSocket parse+reply : {raw[0]:10,.0f} req/s  ({raw[1]:.1f} us server CPU each)"
        )
        print(
            f"    SignalR SendEvent invoke  : {hub[0]:10,.0f} req/s  ({hub[1]:.1f} us server CPU each)"
        )
        print(
            f"    ratio SignalR/raw: throughput {hub[0] / raw[0]:.2f}, "
            f"CPU efficiency {raw[1] / hub[1]:.2f}"
        )
        quix = _median(results["writer-hub"])
        ratios = sorted(
            q[0] / r[0] for q, r in zip(results["writer-hub"], results["raw"], strict=True)
        )
        median = statistics.median(ratios)
        print(
            f"    Quix writer hub SendEventData (durable ack each): {quix[0]:10,.0f} req/s  "
            f"({quix[1]:.1f} us server CPU each)"
        )
        print(
            f"    ratio writer hub/raw: throughput {quix[0] / raw[0]:.2f}, "
            f"CPU efficiency {raw[1] / quix[1]:.2f}"
        )
        verdict = "MET" if median >= 0.5 else "NOT met"
        print(
            f"    writer hub/raw throughput per round (same round): "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; median {median:.2f}, "
            f"min {ratios[0]:.2f}  (target >= 0.5: {verdict})"
        )
    finally:
        server.close()
        gateway.close()


def _median(rows: list[tuple[float, float]]) -> tuple[float, float]:
    """Median rate and median CPU per request over the rounds."""
    return (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))


def bench_fanout(rounds: int) -> None:
    """(b) Fan-out of Quix data through the Reader hub to many subscribers.

    It needs the gateway app with its hubs, a broker and client processes, so it is its own
    script, ``bench/signalr/fanout.py`` (500 readers x 1,000 events/s: delivery rate, latency
    percentiles, the verdict on the median of its rounds), run here with its defaults.
    """
    print("(b) fan-out through the Reader hub (bench/signalr/fanout.py)", flush=True)
    script = Path(__file__).with_name("fanout.py")
    subprocess.run([sys.executable, str(script), "--rounds", str(rounds)], check=True)


async def _reader(port: int, expect: int, got: list[int]) -> None:
    ws = await signalr_connect(port)
    index = len(got)
    got.append(0)
    try:
        while got[index] < expect:
            frame = str(await ws.recv())
            got[index] += frame.count('"target":"Flood"')
    finally:
        await ws.close()


def _stalled_client(port: int) -> socket.socket:
    """Upgrades, completes the SignalR handshake, then never reads (16 KiB receive buffer)."""
    body = httpx.post(f"http://127.0.0.1:{port}/hub/negotiate?negotiateVersion=1").json()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET /hub?id={body['connectionToken']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(4096)
    payload = b'{"protocol":"json","version":1}\x1e'
    mask = b"\x01\x02\x03\x04"
    sock.sendall(
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )
    return sock


async def bench_stalled_memory(readers: int, count: int, size: int) -> None:
    queue = 128
    server = Server("--outgoing-queue", str(queue))
    stalled = None
    try:
        control = await signalr_connect(server.port)
        got: list[int] = []
        tasks = [asyncio.create_task(_reader(server.port, count, got)) for _ in range(readers)]
        stalled = await asyncio.to_thread(_stalled_client, server.port)
        while (await invoke(control, "Stats"))["connections"] < readers + 2:
            await asyncio.sleep(0.05)
        before = server.rss_mib()
        server.reset_peak()
        start = time.perf_counter()
        delivered = await invoke(control, "Flood", count, size, 0.01)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        peak = server.rss_mib("VmHWM")
        stats = await invoke(control, "Stats")
        await control.close()
        missed = count * size / 2**20
        print(
            f"(c) {readers} readers + control + 1 stalled, {count} x {size} B broadcast "
            f"({missed:.0f} MiB per client) in {elapsed:.1f} s"
        )
        print(
            f"    server RSS {before:.0f} MiB before, peak {peak:.0f} MiB (+{peak - before:.0f} MiB; "
            f"outgoing queue bound {queue} x {size} B = {queue * size / 2**20:.0f} MiB)"
        )
        print(
            f"    stalled client closed by overflow: {stats['overflow_closes']}; every reader got "
            f"{min(got)}..{max(got)} of {count}; messages queued in total: {delivered}"
        )
        # bounded: the growth stays within a few queue bounds (plus socket buffers), far below
        # what the stalled client missed, and nobody else lost anything
        bounded = (
            peak - before < max(4 * queue * size / 2**20, 8.0) < missed
            and stats["overflow_closes"] == 1
            and min(got) == count
        )
        print(f"    memory bounded with a stalled reader: {'YES' if bounded else 'NO'}")
    finally:
        if stalled is not None:
            stalled.close()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per contender and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--readers", type=int, default=5)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--fanout-rounds", type=int, default=3, help="rounds of (b); 0 skips it")
    args = parser.parse_args()
    asyncio.run(bench_invocations(args.seconds, args.window, args.rounds))
    if args.fanout_rounds:
        bench_fanout(args.fanout_rounds)
    asyncio.run(bench_stalled_memory(args.readers, args.count, args.size))


if __name__ == "__main__":
    main()
