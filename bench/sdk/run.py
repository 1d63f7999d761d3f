"""SDK publish throughput, next to references measured in the same run.

1,000,000 numeric values (200,000 timestamps x 5 parameters) published through the buffer API
(``packet_size`` 1,000 rows, so 200 packets), timed until ``flush()`` returned (every packet
durably acknowledged):

(a) ``KafkaStreamingClient`` next to a raw confluent-kafka producer sending the same message
    bytes (pre-encoded, acks=all, idempotent), target ratio >= 0.5;
(b) ``StreamingClient`` to ``streamport up`` (embedded broker, subprocess) next to the Writer HTTP
    API's batched path (the same 200 packets as ``parameters/data`` JSON bodies, pre-encoded,
    sent by httpx over keep-alive, 4 in flight), target ratio >= 1.0.

Ratios are SDK values/s divided by reference values/s. Run: ``python bench/sdk/run.py``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import msgspec
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.services.kafka import kafka_service  # noqa: E402
from tests.services.ports import free_port  # noqa: E402

from streamport import KafkaStreamingClient, StreamingClient  # noqa: E402
from streamport.client._data import rows_to_raw  # noqa: E402
from streamport.model import encode  # noqa: E402

PARAMS = ("p0", "p1", "p2", "p3", "p4")
START = 1_700_000_000_000_000_000


def publish_sdk(client: KafkaStreamingClient | StreamingClient, rows: int, packet: int) -> float:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    producer = client.get_topic_producer(topic)
    stream = producer.create_stream("bench")
    buffer = stream.timeseries.buffer
    buffer.packet_size = packet
    producer.flush()  # topic creation and the stream's properties are not timed
    started = time.perf_counter()
    for i in range(rows):
        builder = buffer.add_timestamp_nanoseconds(START + i * 1000)
        for j, name in enumerate(PARAMS):
            builder.add_value(name, i * 0.5 + j)
        builder.publish()
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.dispose()
    return elapsed


def packets(rows: int, packet: int) -> list[bytes]:
    out = []
    for first in range(0, rows, packet):
        block = [
            (START + i * 1000, {name: i * 0.5 + j for j, name in enumerate(PARAMS)}, {})
            for i in range(first, min(first + packet, rows))
        ]
        out.append(encode(rows_to_raw(block)))
    return out


def raw_kafka(bootstrap: str, values: list[bytes]) -> float:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
        }
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)  # topic creation is not timed
    producer.produce(topic, b"warm-up", key=b"bench")
    producer.flush(30)
    started = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(topic, value, key=b"bench")
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    return time.perf_counter() - started


def writer_http(url: str, rows: int, packet: int) -> float:
    topic = f"bench-http-{uuid.uuid4().hex[:8]}"
    bodies = []
    for first in range(0, rows, packet):
        idx = range(first, min(first + packet, rows))
        bodies.append(
            msgspec.json.encode(
                {
                    "timestamps": [START + i * 1000 for i in idx],
                    "numericValues": {n: [i * 0.5 + j for i in idx] for j, n in enumerate(PARAMS)},
                }
            )
        )
    path = f"/writer/topics/{topic}/streams/bench/parameters/data"
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post(path, content=bodies[0], headers=headers).raise_for_status()  # create topic
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for response in pool.map(
                lambda body: client.post(path, content=body, headers=headers), bodies
            ):
                response.raise_for_status()
        return time.perf_counter() - started


def start_gateway(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamport",
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--no-auth",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"streamport up did not start: {proc.stderr.read() if proc.stderr else ''}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--packet", type=int, default=1000)
    args = parser.parse_args()
    rows = args.values // len(PARAMS)
    values = rows * len(PARAMS)
    encoded = packets(rows, args.packet)
    print(f"{values:,} values = {rows:,} timestamps x {len(PARAMS)}, packets of {args.packet} rows")

    with tempfile.TemporaryDirectory() as tmp:
        with kafka_service(Path(tmp) / "kafka") as kafka:
            with KafkaStreamingClient(kafka.bootstrap) as client:
                sdk = publish_sdk(client, rows, args.packet)
            raw = raw_kafka(kafka.bootstrap, encoded)
        print(f"(a) KafkaStreamingClient buffer API: {values / sdk:12,.0f} values/s ({sdk:.2f} s)")
        print(f"    raw confluent-kafka, same bytes:  {values / raw:12,.0f} values/s ({raw:.2f} s)")
        print(f"    ratio {raw / sdk:.2f} (target >= 0.5)")

        proc, url = start_gateway(Path(tmp) / "gateway")
        try:
            with StreamingClient(url) as client:
                sdk = publish_sdk(client, rows, args.packet)
            http = writer_http(url, rows, args.packet)
        finally:
            proc.terminate()
            proc.wait(30)
        print(f"(b) StreamingClient buffer API:      {values / sdk:12,.0f} values/s ({sdk:.2f} s)")
        print(
            f"    Writer HTTP, batched bodies:     {values / http:12,.0f} values/s ({http:.2f} s)"
        )
        print(f"    ratio {http / sdk:.2f} (target >= 1.0)")


if __name__ == "__main__":
    main()
