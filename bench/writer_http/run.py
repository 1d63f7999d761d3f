"""Writer HTTP API throughput, next to references measured in the same run.

(a) single-event ``events/data`` requests/s against ``streamport up`` (auth on, embedded broker),
    next to a bare Starlette+uvicorn endpoint that only parses the same JSON (bare.py).
(b) batched ``parameters/data`` (1,000 timestamps x 5 numeric values per request) in values/s, next
    to the embedded broker's own produce rate for the same message bytes (in-process, 8 concurrent
    producers so group commit can work for it too).

Both servers run throughout; the measurements alternate in rounds (bare, events, parameters,
check, raw) and the verdict is the median of the per-round ratios, so a machine busy with something
else for a while weighs on both sides of a ratio alike.

Load comes from wrk (C, a separate process: the client costs little of the 2 cores). Install it
with ``apt-get install wrk``. Run: ``python bench/writer_http/run.py [--seconds 5] [--rounds 3]``.

What bounds (b), measured in the same run: the bare server's ``/check`` endpoint, posted the same
bodies, reads each and checks its JSON syntax with msgspec (numbers skipped, the cheapest full check
this stack has; a 200 must never be given for a body that is not valid JSON) and produces nothing.
If it runs at ``f`` times the raw produce rate, an endpoint that does that much and then also
produces the record on the same event loop (the raw producer is CPU-bound on one core, like the
gateway's loop) costs at least the sum of the two, so its ratio cannot exceed ``f / (1 + f)``;
the run prints that bound next to the ratio. Measured: ``f`` 0.52-0.69, bound 0.36, streamport
0.29-0.39 (November 2026). Reaching 0.5 would need the whole HTTP request, read and checked, to
cost no more than the broker's append of the same bytes. Granian 2.8 (Rust HTTP, ASGI) was
tried in place of uvicorn for the bare server: slower here (``/check`` 3,600-4,600 req/s against
5,300; small events 7,800 against 11,500).

In instructions (valgrind callgrind, load-independent): the embedded broker's produce of one 49 KB
record costs ~0.36M with 8 producers; the whole gateway request ~2.9M when last measured whole, of
which the body -> envelope step (``streamport.model.spliced``) 1.9M (it was 7.0M when every float
was decoded and re-encoded) and msgspec's syntax check of the body 0.8M of that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

from streamport.broker import Record
from streamport.broker.embedded import EmbeddedBroker
from streamport.model import encode, parse_parameter_data

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
from tests.services.ports import free_port  # noqa: E402

EVENT = b'[{"id":"mouse","timestamp":1700000000000000000,"value":"{\\"x\\":120,\\"y\\":45}","tags":{"page":"home"}}]'


def parameters_body() -> bytes:
    start = 1_700_000_000_000_000_000
    timestamps = [start + i * 1_000_000 for i in range(1000)]
    numeric = {f"p{j}": [float(i * 0.5 + j) for i in range(1000)] for j in range(5)}
    return msgspec.json.encode({"timestamps": timestamps, "numericValues": numeric})


def wrk_script(path: str, body: bytes, token: str | None) -> str:
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if token:
        headers += f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    lua.write_text(
        f'wrk.method = "POST"\nwrk.path = "{path}"\n{headers}wrk.body = [==[{body.decode()}]==]\n'
    )
    return str(lua)


def run_wrk(url: str, script: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk saw {non2xx.group(1)} error responses:\n{out}")

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": ms("50"), "p99": ms("99")}


def start(cmd: list[str], url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPORT_")}
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    for _ in range(600):
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"server did not start: {cmd}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(30)


async def raw_produce_rate(data_dir: Path, value: bytes, seconds: float) -> float:
    """Messages/s of the embedded broker for `value`, 8 producers awaiting acks concurrently."""
    async with EmbeddedBroker(data_dir) as broker:
        await broker.create_topic("raw")
        count = 0
        deadline = time.perf_counter() + seconds

        async def producer(n: int) -> None:
            nonlocal count
            record = [Record(value=value, key=f"s{n}".encode())]
            while time.perf_counter() < deadline:
                await broker.produce("raw", record)
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(producer(n) for n in range(8)))
        return count / (time.perf_counter() - started)


def create_token(data_dir: Path) -> str:
    argv = ["tokens", "create", "--name", "bench", "--data-dir", str(data_dir)]
    out = subprocess.run(
        [sys.executable, "-m", "streamport", *argv], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    body = parameters_body()
    envelope = encode(parse_parameter_data(body))
    values = 5 * 1000
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        token = create_token(data / "sp")
        bare_base = f"http://127.0.0.1:{free_port()}"
        base = f"http://127.0.0.1:{free_port()}"
        up = ["up", "--data-dir", str(data / "sp"), "--port", base.rsplit(":", 1)[1]]
        bare = start(
            [sys.executable, str(HERE / "bare.py"), bare_base.rsplit(":", 1)[1]], bare_base
        )
        server = start([sys.executable, "-m", "streamport", *up], base + "/healthz")
        scripts = {
            "bare": wrk_script("/parse", EVENT, None),
            "check": wrk_script("/check", body, None),
            "events": wrk_script(
                "/writer/topics/bench-events/streams/s1/events/data", EVENT, token
            ),
            "params": wrk_script(
                "/writer/topics/bench-params/streams/s1/parameters/data", body, token
            ),
        }
        try:
            # Alternating rounds: a machine busy with something else for a while hurts both sides
            # of a ratio alike, and the median of the per-round ratios is the verdict.
            for n in range(args.rounds):
                r = {
                    "bare": run_wrk(bare_base, scripts["bare"], args.seconds, args.connections),
                    "events": run_wrk(base, scripts["events"], args.seconds, args.connections),
                    "params": run_wrk(base, scripts["params"], args.seconds, 8),
                    "check": run_wrk(bare_base, scripts["check"], args.seconds, 8),
                }
                raw = asyncio.run(raw_produce_rate(data / "raw", envelope, args.seconds))
                # Gigabytes of dirty pages left behind would slow the next rounds' writes.
                shutil.rmtree(data / "raw")
                r["raw"] = {"rps": raw}
                rounds.append(r)
                print(
                    f"round {n + 1}: (a) {r['events']['rps']:,.0f} / {r['bare']['rps']:,.0f} req/s"
                    f" = {r['events']['rps'] / r['bare']['rps']:.2f}   (b) {r['params']['rps']:,.0f}"
                    f" req/s / {raw:,.0f} msg/s = {r['params']['rps'] / raw:.2f}"
                    f"   (b) bare check {r['check']['rps']:,.0f} req/s: f = {r['check']['rps'] / raw:.2f}",
                    flush=True,
                )
        finally:
            stop(server)
            stop(bare)

    def med(side: str, key: str) -> float:
        return statistics.median([r[side][key] for r in rounds])

    ratio_a = statistics.median([r["events"]["rps"] / r["bare"]["rps"] for r in rounds])
    ratio_b = statistics.median([r["params"]["rps"] / r["raw"]["rps"] for r in rounds])
    print(f"medians of {args.rounds} alternating rounds of {args.seconds}s each")
    print(f"(a) events/data, 1 event per request, {args.connections} connections")
    for name, side in (("streamport", "events"), ("bare parse", "bare")):
        print(
            f"    {name:12} {med(side, 'rps'):10,.0f} req/s"
            f"   p50 {med(side, 'p50'):.2f} ms   p99 {med(side, 'p99'):.2f} ms"
        )
    print(f"    ratio        {ratio_a:.2f}  (target >= 0.7)")
    print(
        f"(b) parameters/data, 1,000 timestamps x 5 values per request ({len(body):,} bytes), 8 connections"
    )
    print(
        f"    streamport   {med('params', 'rps') * values:14,.0f} values/s"
        f"  ({med('params', 'rps'):,.0f} req/s)"
        f"   p50 {med('params', 'p50'):.2f} ms   p99 {med('params', 'p99'):.2f} ms"
    )
    print(
        f"    raw produce  {med('raw', 'rps') * values:14,.0f} values/s"
        f"  ({med('raw', 'rps'):,.0f} msg/s of {len(envelope):,} bytes)"
    )
    print(f"    ratio        {ratio_b:.2f}  (target >= 0.5)")
    floor = statistics.median([r["check"]["rps"] / r["raw"]["rps"] for r in rounds])
    print(
        f"    bare check   {med('check', 'rps') * values:14,.0f} values/s"
        f"  ({med('check', 'rps'):,.0f} req/s: the same bodies to the bare server, JSON syntax"
        " checked, nothing produced)"
    )
    print(
        f"    ratio        {floor:.2f}; bound of any endpoint that checks and also produces on the"
        f" same loop: {floor:.2f} / (1 + {floor:.2f}) = {floor / (1 + floor):.2f}"
    )


if __name__ == "__main__":
    main()
