"""Writer HTTP ingest into Kafka, next to references measured in the same run, on one broker.

(a) streamport: ``streamport up --broker kafka://...`` (auth on), batched ``parameters/data``
    requests (1,000 timestamps x 5 numeric values each), load from wrk (C, a separate process, so
    the client costs little of the machine's cores), in values/s.
(b) raw confluent-kafka: one producer in this process sending the very message bytes streamport
    writes for such a request (the Quix envelope, keyed by stream id) with the same producer
    settings (idempotent, acks=all, linger 5 ms), as fast as deliveries allow.
(c) the Strimzi Kafka Bridge (io.strimzi:kafka-bridge from Maven Central, run with java) producing
    the same record bytes over HTTP (binary embedded format), load from wrk. When the bridge cannot
    be resolved or started, the run says exactly why and reports (a) and (b).

One single-node KRaft broker from tests/services/kafka.py serves all three, each on its own topic.
Streamport and the raw producer alternate for ``--rounds`` rounds (the machine may be shared);
the medians are compared. Run: ``python bench/kafka/run.py [--seconds 5] [--connections 32]`` (needs wrk, java, mvn).
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streamport.model import encode, parse_parameter_data

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
from tests.cli.conftest import start_server  # noqa: E402
from tests.services.kafka import kafka_service  # noqa: E402
from tests.services.ports import free_port  # noqa: E402

VALUES_PER_REQUEST = 1000 * 5
STREAM = "bench-stream"
MAX_IN_FLIGHT = 256
BRIDGE_POM = HERE / "bridge-pom.xml"


def parameters_body() -> bytes:
    start = 1_700_000_000_000_000_000
    return msgspec.json.encode(
        {
            "timestamps": [start + i * 1_000_000 for i in range(1000)],
            "numericValues": {f"p{j}": [i * 0.25 + j for i in range(1000)] for j in range(5)},
        }
    )


def create_topics(bootstrap: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, num_partitions=1) for n in names]).values():
        future.result(30)


def run_wrk(
    url: str, path: str, body: bytes, headers: dict[str, str], seconds: int, connections: int
) -> float:
    """Requests/s that wrk measured; any non-2xx answer aborts the benchmark."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write('wrk.method = "POST"\n')
        lua.write(f'wrk.path = "{path}"\n')
        for name, value in headers.items():
            lua.write(f'wrk.headers["{name}"] = "{value}"\n')
        lua.write(f"wrk.body = [==[{body.decode()}]==]\n")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", lua.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(lua.name).unlink()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}{path}:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out}")
    return float(found.group(1))


@contextmanager
def streamport_target(
    workdir: Path, bootstrap: str, body: bytes
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A running ``streamport up --broker kafka://...``: (url, path, headers) to load."""
    server = start_server(workdir / "streamport", "--broker", f"kafka://{bootstrap}")
    try:
        assert server.token is not None
        path = f"/writer/topics/bench-streamport/streams/{STREAM}/parameters/data"
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        warm = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
        warm.raise_for_status()  # creates the topic
        yield server.url, path, headers
    finally:
        server.stop()


def bench_raw(bootstrap: str, value: bytes, seconds: int) -> float:
    """Delivered records/s x values per record, for a producer kept busy for `seconds`."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    delivered = 0
    failed: list[KafkaError] = []

    def report(error: KafkaError | None, _message: Message) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1
        else:
            failed.append(error)

    key = STREAM.encode()
    sent = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        # Keep MAX_IN_FLIGHT records queued or in transit: enough to fill every batch and
        # request pipeline, without queueing seconds of data that would only be flushed later.
        if sent - delivered - len(failed) >= MAX_IN_FLIGHT:
            producer.poll(0.001)
            continue
        producer.produce("bench-raw", value=value, key=key, on_delivery=report)
        sent += 1
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - started
    if failed:
        raise SystemExit(f"raw producer: {len(failed)} deliveries failed, e.g. {failed[0]}")
    return delivered * VALUES_PER_REQUEST / elapsed


def bridge_libs(cache: Path) -> tuple[Path | None, str]:
    """Resolve the bridge's jars with mvn into `cache` (kept between runs); (libs, why not)."""
    version = re.search(r"<bridge\.version>([^<]+)<", BRIDGE_POM.read_text())
    assert version is not None
    libs = cache / f"kafka-bridge-{version.group(1)}" / "libs"
    if (libs / ".complete").exists():
        return libs, ""
    if shutil.which("mvn") is None or shutil.which("java") is None:
        return None, "java and mvn are needed to resolve and run the bridge"
    done = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(BRIDGE_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        missing = re.search(r"\S+ was not found in \S+", done.stdout)
        reason = missing.group(0) if missing else done.stdout[-800:]
        return None, (
            f"mvn could not resolve io.strimzi:kafka-bridge:{version.group(1)} from Maven Central "
            f"({reason.strip()})"
        )
    (libs / ".complete").touch()
    return libs, ""


def bench_bridge(
    libs: Path, workdir: Path, bootstrap: str, value: bytes, seconds: int, connections: int
) -> float:
    port = free_port()
    config = workdir / "bridge.properties"
    config.write_text(
        "bridge.id=streamport-bench\n"
        f"kafka.bootstrap.servers={bootstrap}\n"
        "kafka.producer.acks=all\n"
        "kafka.producer.enable.idempotence=true\n"
        "kafka.producer.linger.ms=5\n"
        "kafka.producer.max.request.size=2000000\n"
        "http.host=127.0.0.1\n"
        f"http.port={port}\n"
    )
    log = (workdir / "bridge.log").open("wb")
    process = subprocess.Popen(
        [
            "java",
            "-Xmx512m",
            "-cp",
            f"{libs}/*",
            "io.strimzi.kafka.bridge.Application",
            "--config-file",
            str(config),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the bridge exited; see {workdir / 'bridge.log'}")
            try:
                if httpx.get(url + "/healthy", timeout=2).status_code in (200, 204):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = msgspec.json.encode(
            {
                "records": [
                    {
                        "key": base64.b64encode(STREAM.encode()).decode(),
                        "value": base64.b64encode(value).decode(),
                    }
                ]
            }
        )
        headers = {"Content-Type": "application/vnd.kafka.binary.v2+json"}
        return (
            run_wrk(url, "/topics/bench-bridge", body, headers, seconds, connections)
            * VALUES_PER_REQUEST
        )
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    # 32 requests in flight: a batched ingest has many writers, and each request waits for Kafka's
    # acknowledgement (linger + replication round trip), so fewer connections measure latency,
    # not throughput. The raw producer keeps MAX_IN_FLIGHT (256) records in flight.
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    body = parameters_body()
    value = encode(parse_parameter_data(msgspec.json.decode(body)))
    cache = Path.home() / ".cache" / "streamport"
    with tempfile.TemporaryDirectory(prefix="streamport-bench-kafka-") as tmp:
        workdir = Path(tmp)
        libs, why_not = bridge_libs(cache)
        with kafka_service(workdir / "kafka") as kafka:
            create_topics(kafka.bootstrap, "bench-raw", "bench-bridge")
            print(
                f"Kafka {kafka.bootstrap}; request body {len(body)} bytes, record {len(value)} bytes, "
                f"{VALUES_PER_REQUEST} values per request; {args.seconds}s each, "
                f"{args.connections} connections"
            )
            # The machine is shared: alternate the two, and compare medians of the rounds.
            streamport_runs, raw_runs = [], []
            with streamport_target(workdir, kafka.bootstrap, body) as (url, path, headers):
                for _ in range(args.rounds):
                    rps = run_wrk(url, path, body, headers, args.seconds, args.connections)
                    streamport_runs.append(rps * VALUES_PER_REQUEST)
                    raw_runs.append(bench_raw(kafka.bootstrap, value, args.seconds))
            streamport, raw = statistics.median(streamport_runs), statistics.median(raw_runs)
            bridge = None
            if libs is not None:
                bridge = bench_bridge(
                    libs, workdir, kafka.bootstrap, value, args.seconds, args.connections
                )

    def rounds(runs: list[float]) -> str:
        return "rounds: " + ", ".join(f"{r / 1e6:.2f}M" for r in runs)

    print(
        f"streamport Writer HTTP -> Kafka  {streamport:>14,.0f} values/s  {rounds(streamport_runs)}"
    )
    print(f"raw confluent-kafka producer     {raw:>14,.0f} values/s  {rounds(raw_runs)}")
    print(f"  ratio streamport / raw          {streamport / raw:>14.2f}   (target >= 0.5)")
    if bridge is None:
        print(f"Strimzi Kafka Bridge             not run: {why_not}")
    else:
        print(f"Strimzi Kafka Bridge (HTTP)      {bridge:>14,.0f} values/s")
        print(f"  ratio streamport / bridge       {streamport / bridge:>14.2f}   (target > 1)")


if __name__ == "__main__":
    main()
