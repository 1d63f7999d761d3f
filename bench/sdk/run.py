"""SDK publish throughput, next to references measured in the same run.

Workload: 1,000,000 numeric values (200,000 timestamps x 5 parameters, the value of parameter
``j`` at row ``i`` is ``i * 0.5 + j``), in packets of 1,000 rows (200 packets). Every figure is
timed from the first value to the durable acknowledgement of the last. The SDK takes the values
through its buffer (``packet_size`` 1,000, then ``flush()``) in two ways, each with a target:

- *value calls*: one call per timestamp and value (``add_timestamp_nanoseconds``, 5 x
  ``add_value``, ``publish``) -- what a program that gets its values one at a time does;
- *DataFrames*: ``buffer.publish(frame)`` of 200 DataFrames of 1,000 rows (``timestamp`` and the
  5 parameters), built before the clock starts (the program's input, as the raw reference's
  bytes are its input) -- what a program holding its data as tables does.

(a) ``KafkaStreamingClient``. Reference, as the issue words it: a raw confluent-kafka producer
    sending *the same message bytes*, encoded before the clock starts (so the reference does no
    Python work per value at all), with the SDK's producer settings (acks=all, idempotent,
    linger 5 ms). Target ratio SDK/raw >= 0.5. After the rounds (untimed) the parameter-data
    messages of the last run of each way are read back and compared with the reference's bytes:
    they must be identical (the run stops otherwise), so the contenders put exactly the same
    bytes on the topic. For information: the same raw producer with the bytes built inside the
    timed window by the value-call loop (appending to columns, then encoding) -- what a program
    writing the envelope to Kafka by hand does per value, and the most per-value code written in
    Python can reach (an API's method call per value costs more than a ``list.append``; its ratio
    to the reference is printed as "built by row"); and the value-call loop alone, calling a
    builder that keeps nothing.
(b) ``StreamingClient`` (native WebSocket protocol) to ``streamport up`` (embedded broker,
    subprocess). Reference, the Writer HTTP batched path (``POST .../parameters/data``, httpx
    over keep-alive, 4 requests in flight) carrying the same values, each timed with the body
    building inside the window:
    - *built by row* (the value calls' target reference): the very loop of the SDK run (one
      timestamp and its 5 values at a time) appending to the packet's columns, then
      ``msgspec.json.encode`` -- what a program that gets its values one row at a time has to do
      without the SDK;
    - *from DataFrames* (the DataFrames' target reference): each frame's columns as lists
      (``Series.tolist()``), then encoded;
    - *built by column* (information): each packet's columns by list comprehension, then
      encoded -- the cheapest a client holding whole columns can do;
    - *pre-encoded* (information): the 200 bodies encoded before the clock starts, so only the
      posting and the server's work are timed (the old benchmark's only reference).
    Target ratio SDK/HTTP >= 1.0 for each way; the other ratios are printed next to them.

The machine is shared: each comparison alternates SDK and reference runs for ``--rounds`` rounds
and compares medians (every round is printed), and prints the median CPU seconds each contender
spent (this process, and the gateway process in (b); not the Kafka broker), which a busy machine
disturbs far less than wall time. Run: ``python bench/sdk/run.py [--rounds 5] [--only kafka|native]``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
import msgspec
import pandas as pd
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.services.kafka import kafka_service  # noqa: E402
from tests.services.ports import free_port  # noqa: E402

from streamport import KafkaStreamingClient, StreamingClient  # noqa: E402
from streamport.model import TimeseriesData, encode  # noqa: E402

PARAMS = ("p0", "p1", "p2", "p3", "p4")
START = 1_700_000_000_000_000_000
HTTP_IN_FLIGHT = 4


SDK_TOPICS: list[str] = []  # the topics publish_sdk wrote (the last one is checked, untimed)


def publish_sdk(
    client: KafkaStreamingClient | StreamingClient,
    rows: int,
    packet: int,
    frames: list[pd.DataFrame] | None = None,
) -> float:
    """The workload through the buffer: one call per timestamp and value, or (`frames` given)
    one ``buffer.publish(frame)`` per DataFrame."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    SDK_TOPICS.append(topic)
    producer = client.get_topic_producer(topic)
    stream = producer.create_stream("bench")
    buffer = stream.timeseries.buffer
    buffer.packet_size = packet
    producer.flush()  # topic creation and the stream's properties are not timed
    started = time.perf_counter()
    if frames is not None:
        for frame in frames:
            buffer.publish(frame)
    else:
        for i in range(rows):
            builder = buffer.add_timestamp_nanoseconds(START + i * 1000)
            for j, name in enumerate(PARAMS):
                builder.add_value(name, i * 0.5 + j)
            builder.publish()
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.dispose()
    return elapsed


class _NoOp:
    """A builder that keeps nothing: what the benchmark's own loop costs without an SDK."""

    def add_timestamp_nanoseconds(self, nanoseconds: int) -> _NoOp:
        return self

    def add_value(self, parameter_id: str, value: float) -> _NoOp:
        return self

    def publish(self) -> None:
        pass


def loop_alone(rows: int) -> float:
    """The value-call loop of `publish_sdk` into `_NoOp` (the floor of any per-value API)."""
    buffer = _NoOp()
    started = time.perf_counter()
    for i in range(rows):
        builder = buffer.add_timestamp_nanoseconds(START + i * 1000)
        for j, name in enumerate(PARAMS):
            builder.add_value(name, i * 0.5 + j)
        builder.publish()
    return time.perf_counter() - started


def dataframes(rows: int, packet: int) -> list[pd.DataFrame]:
    """The workload as DataFrames of `packet` rows (``timestamp`` and the 5 parameters)."""
    out = []
    for first in range(0, rows, packet):
        idx = range(first, min(first + packet, rows))
        columns: dict[str, list[int] | list[float]] = {"timestamp": [START + i * 1000 for i in idx]}
        columns.update({n: [i * 0.5 + j for i in idx] for j, n in enumerate(PARAMS)})
        out.append(pd.DataFrame(columns))
    return out


def packets(rows: int, packet: int) -> list[bytes]:
    """The message bytes the SDK writes for the workload (the raw producer's input)."""
    out = []
    for first in range(0, rows, packet):
        idx = range(first, min(first + packet, rows))
        data = TimeseriesData(
            timestamps=[START + i * 1000 for i in idx],
            numeric_values={n: [i * 0.5 + j for i in idx] for j, n in enumerate(PARAMS)},
        )
        out.append(encode(data))
    return out


def columns_by_row(
    rows: int, packet: int
) -> Iterator[tuple[list[int], dict[str, list[float | None]]]]:
    """The workload built by the loop of `publish_sdk` (one timestamp and its 5 values at a
    time) appending to a packet's columns: (timestamps, columns) a packet at a time."""
    stamps: list[int] = []
    columns: dict[str, list[float | None]] = {name: [] for name in PARAMS}
    for i in range(rows):
        stamps.append(START + i * 1000)
        for j, name in enumerate(PARAMS):
            columns[name].append(i * 0.5 + j)
        if len(stamps) == packet or i == rows - 1:
            yield stamps, columns
            stamps = []
            columns = {name: [] for name in PARAMS}


def packets_by_row(rows: int, packet: int) -> Iterator[bytes]:
    """The same message bytes, built by row (`columns_by_row`), then encoded."""
    for stamps, columns in columns_by_row(rows, packet):
        yield encode(TimeseriesData(timestamps=stamps, numeric_values=columns))


def check_same_bytes(bootstrap: str, topic: str, want: list[bytes]) -> None:
    """The parameter-data messages the SDK wrote to `topic` are exactly `want` (the raw
    reference's bytes): both contenders put the same bytes on Kafka. Not timed."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(want) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            value = message.value() or b""
            if value.startswith(b'{"C":"JT","K":"ParameterData"'):
                got.append(value)
    finally:
        consumer.close()
    if got != want:
        same = sum(a == b for a, b in zip(got, want, strict=False))
        raise SystemExit(
            f"the SDK wrote other bytes than the raw reference: {len(got)} packets, "
            f"{same} of {len(want)} identical"
        )


def raw_kafka(bootstrap: str, values: Iterable[bytes]) -> float:
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


def http_bodies_by_row(rows: int, packet: int) -> Iterator[bytes]:
    """The ``parameters/data`` bodies, built by row (`columns_by_row`), then encoded."""
    for stamps, columns in columns_by_row(rows, packet):
        yield msgspec.json.encode({"timestamps": stamps, "numericValues": columns})


def http_bodies(rows: int, packet: int) -> Iterator[bytes]:
    """The ``parameters/data`` bodies, each built column by column (list comprehensions)."""
    for first in range(0, rows, packet):
        idx = range(first, min(first + packet, rows))
        yield msgspec.json.encode(
            {
                "timestamps": [START + i * 1000 for i in idx],
                "numericValues": {n: [i * 0.5 + j for i in idx] for j, n in enumerate(PARAMS)},
            }
        )


def http_bodies_from_frames(frames: list[pd.DataFrame]) -> Iterator[bytes]:
    """The ``parameters/data`` bodies of the DataFrames: each column as a list, encoded."""
    for frame in frames:
        yield msgspec.json.encode(
            {
                "timestamps": frame["timestamp"].tolist(),
                "numericValues": {n: frame[n].tolist() for n in PARAMS},
            }
        )


def writer_http(url: str, bodies: Callable[[], Iterator[bytes]]) -> float:
    """POST every body of `bodies()` with `HTTP_IN_FLIGHT` requests in flight; the bodies are
    produced inside the timed window (pre-encoded ones are just handed out)."""
    topic = f"bench-http-{uuid.uuid4().hex[:8]}"
    path = f"/writer/topics/{topic}/streams/bench/parameters/data"
    headers = {"Content-Type": "application/json"}
    warm_up = msgspec.json.encode({"timestamps": [START], "numericValues": {"p0": [0.0]}})
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        concurrent.futures.ThreadPoolExecutor(HTTP_IN_FLIGHT) as pool,
    ):
        client.post(path, content=warm_up, headers=headers).raise_for_status()  # create topic
        started = time.perf_counter()
        waiting: collections.deque[concurrent.futures.Future[httpx.Response]] = collections.deque()
        for body in bodies():
            if len(waiting) >= 2 * HTTP_IN_FLIGHT:
                waiting.popleft().result().raise_for_status()
            waiting.append(pool.submit(client.post, path, content=body, headers=headers))
        while waiting:
            waiting.popleft().result().raise_for_status()
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
    error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    raise RuntimeError(f"streamport up did not start: {error}")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process `pid` (Linux /proc)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Runs:
    """Wall times of the rounds of one contender, with the CPU this process (and the gateway,
    when given) spent on them -- CPU is far less sensitive than wall time to a busy machine."""

    def __init__(self, gateway: int | None = None) -> None:
        self.gateway = gateway
        self.walls: list[float] = []
        self.client_cpu: list[float] = []
        self.gateway_cpu: list[float] = []

    def add(self, run: Callable[[], float]) -> None:
        client, gateway = cpu_seconds(), cpu_seconds(self.gateway) if self.gateway else 0.0
        self.walls.append(run())
        self.client_cpu.append(cpu_seconds() - client)
        if self.gateway:
            self.gateway_cpu.append(cpu_seconds(self.gateway) - gateway)


def line(label: str, values: int, runs: Runs) -> float:
    median = statistics.median(runs.walls)
    rounds = ", ".join(f"{values / t:,.0f}" for t in runs.walls)
    cpu = f"client {statistics.median(runs.client_cpu):.2f} s"
    if runs.gateway_cpu:
        cpu += f" + gateway {statistics.median(runs.gateway_cpu):.2f} s"
    print(
        f"    {label:<34} {values / median:>11,.0f} values/s  CPU {cpu}  (medians; rounds: {rounds})"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--packet", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("kafka", "native"), default=None)
    args = parser.parse_args()
    rows = args.values // len(PARAMS)
    values = rows * len(PARAMS)
    print(f"{values:,} values = {rows:,} timestamps x {len(PARAMS)}, packets of {args.packet} rows")

    frames = dataframes(rows, args.packet)  # the input of the DataFrame runs, not timed
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "kafka"):
            encoded = packets(rows, args.packet)
            kafka_runs, frame_runs, raw_runs, by_row_runs = Runs(), Runs(), Runs(), Runs()
            loop_runs = Runs()
            with (
                kafka_service(Path(tmp) / "kafka") as kafka,
                KafkaStreamingClient(kafka.bootstrap) as client,
            ):
                publish_sdk(client, rows // 10, args.packet)  # warm-up (connections)
                for _ in range(args.rounds):
                    kafka_runs.add(lambda: publish_sdk(client, rows, args.packet))
                    frame_runs.add(lambda: publish_sdk(client, rows, args.packet, frames))
                    raw_runs.add(lambda: raw_kafka(kafka.bootstrap, encoded))
                    by_row_runs.add(
                        lambda: raw_kafka(kafka.bootstrap, packets_by_row(rows, args.packet))
                    )
                    loop_runs.add(lambda: loop_alone(rows))
                for topic in SDK_TOPICS[-2:]:  # the last value-call and DataFrame runs
                    check_same_bytes(kafka.bootstrap, topic, encoded)
            print("(a) Kafka")
            sdk = line("KafkaStreamingClient, value calls", values, kafka_runs)
            sdk_frames = line("KafkaStreamingClient, DataFrames", values, frame_runs)
            raw = line("raw confluent-kafka, same bytes", values, raw_runs)
            by_row = line("raw confluent-kafka, built by row", values, by_row_runs)
            print(
                f"    ratio {raw / sdk:.2f} value calls (target >= 0.5: bytes encoded beforehand)"
            )
            print(f"    ratio {raw / sdk_frames:.2f} DataFrames (target >= 0.5: same reference)")
            loop = line("the value-call loop alone, no SDK", values, loop_runs)
            print(
                f"    ratio {by_row / sdk:.2f} value calls (information: bytes built by the same loop)"
            )
            print(
                f"    ratio {raw / loop:.2f} the loop alone (information: the caller's loop calling"
                " methods that keep nothing)"
            )
            print(
                f"    ratio {raw / by_row:.2f} built by row (information: the values appended to"
                " lists and encoded, without any API: what per-value Python code can reach)"
            )

        if args.only in (None, "native"):
            refs: dict[str, Callable[[], Iterator[bytes]]] = {
                "row": lambda: http_bodies_by_row(rows, args.packet),
                "frames": lambda: http_bodies_from_frames(frames),
                "columns": lambda: http_bodies(rows, args.packet),
                "pre": lambda: iter(pre),
            }
            pre = list(http_bodies(rows, args.packet))
            proc, url = start_gateway(Path(tmp) / "gateway")
            sdk_runs, sdk_frame_runs = Runs(proc.pid), Runs(proc.pid)
            ref_runs = {name: Runs(proc.pid) for name in refs}
            try:
                with StreamingClient(url) as client:
                    publish_sdk(client, rows // 10, args.packet)  # warm-up
                    for _ in range(args.rounds):
                        sdk_runs.add(lambda: publish_sdk(client, rows, args.packet))
                        sdk_frame_runs.add(lambda: publish_sdk(client, rows, args.packet, frames))
                        for name, bodies in refs.items():
                            ref_runs[name].add(functools.partial(writer_http, url, bodies))
            finally:
                proc.terminate()
                proc.wait(30)
            print("(b) gateway (embedded broker)")
            sdk = line("StreamingClient, value calls", values, sdk_runs)
            sdk_frames = line("StreamingClient, DataFrames", values, sdk_frame_runs)
            row = line("Writer HTTP, bodies built by row", values, ref_runs["row"])
            from_frames = line("Writer HTTP, bodies from DataFrames", values, ref_runs["frames"])
            columns = line("Writer HTTP, bodies built by column", values, ref_runs["columns"])
            pre_encoded = line("Writer HTTP, pre-encoded bodies", values, ref_runs["pre"])
            print(
                f"    ratio {row / sdk:.2f} value calls (target >= 1.0: HTTP bodies built by row)"
            )
            print(
                f"    ratio {from_frames / sdk_frames:.2f} DataFrames "
                "(target >= 1.0: HTTP bodies from the same DataFrames)"
            )
            print(
                f"    ratio {columns / sdk:.2f} value calls (information: bodies built by column)"
            )
            print(
                f"    ratio {pre_encoded / sdk:.2f} value calls (information: pre-encoded bodies)"
            )


if __name__ == "__main__":
    main()
