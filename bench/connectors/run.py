"""Connectors next to the raw client of the same system, in one run.

(a) PostgreSQL destination: ``--rows`` JSON records (id, two numbers, a text) are in a topic of a
    ``streamport up`` server (a separate process); the destination reads them over the SDK's
    WebSocket protocol, maps them to rows and COPYs them into a table in batches of
    ``--batch`` rows, one transaction each. Reference: raw psycopg ``COPY`` of the very same rows
    (already as tuples) into an identical table, same batches and transactions. rows/s.
(b) MQTT source: ``--messages`` QoS 1 messages wait at Mosquitto in the persistent session of the
    client under test; the source drains them into a topic of the server (each batch durable
    before its PUBACKs). Reference: a raw aiomqtt subscriber (auto PUBACK) draining the same
    number of messages queued for its own session on the same broker. messages/s.

PostgreSQL and Mosquitto come from tests/services (free loopback ports, temporary directories);
the rounds alternate (the machine may be shared) and medians are compared. Targets: ratio >= 0.6.
Run: ``python bench/connectors/run.py [--rows 100000] [--messages 30000] [--rounds 3]``
(``--messages 0`` runs (a) only).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import msgspec
import psycopg
from pydantic import SecretStr

from streamport.broker import Record
from streamport.client._native import NativeTransport
from streamport.connectors.mqtt import MqttSource, MqttSourceConfig
from streamport.connectors.postgres import PostgresDestination, PostgresDestinationConfig
from streamport.connectors.runtime import Runner

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
from tests.cli.conftest import Server, start_server  # noqa: E402
from tests.services.mosquitto import MosquittoService, mosquitto_service  # noqa: E402
from tests.services.postgres import PostgresService, postgres_service  # noqa: E402

COLUMNS = "id bigint, a double precision, b double precision, label text"


def rows(count: int) -> list[tuple[int, float, float, str]]:
    return [(n, n * 0.5, n / 7, f"label-{n % 100}") for n in range(count)]


async def fill_topic(server: Server, topic: str, values: Sequence[bytes]) -> None:
    transport = NativeTransport(server.url, server.token)
    await transport.start()
    try:
        for start in range(0, len(values), 5_000):
            await transport.produce(topic, [Record(v) for v in values[start : start + 5_000]])
    finally:
        await transport.aclose()


async def bench_destination(
    server: Server, pg: PostgresService, topic: str, count: int, batch: int
) -> float:
    table = f"dest_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        await conn.execute(f"CREATE TABLE {table} ({COLUMNS})".encode())
    config = PostgresDestinationConfig(
        url=server.url,
        token=SecretStr(server.token or ""),
        input_topic=topic,
        group=f"bench-{table}",
        dsn=SecretStr(pg.dsn),
        table=table,
        batch_size=batch,
        commit_every=50_000,
    )
    started = time.perf_counter()
    result = await Runner(PostgresDestination(config)).run(timeout=300, count=count)
    elapsed = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {table}".encode())
        written = (await cur.fetchone() or (0,))[0]
        await conn.execute(f"DROP TABLE {table}".encode())
    assert result.records_in == count and written == count, (result, written)
    return count / elapsed


async def bench_raw_copy(
    pg: PostgresService, data: list[tuple[int, float, float, str]], batch: int
) -> float:
    table = f"raw_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        await conn.execute(f"CREATE TABLE {table} ({COLUMNS})".encode())
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(pg.dsn) as conn:
        for start in range(0, len(data), batch):
            async with conn.transaction(), conn.cursor() as cur:
                copy_sql = f"COPY {table} (id, a, b, label) FROM STDIN"
                async with cur.copy(copy_sql.encode()) as copy:
                    for row in data[start : start + batch]:
                        await copy.write_row(row)
    elapsed = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        await conn.execute(f"DROP TABLE {table}".encode())
    return len(data) / elapsed


async def queue_messages(broker: MosquittoService, client_id: str, root: str, count: int) -> None:
    """Open `client_id`'s persistent session (subscribed to root/#) and queue `count` messages."""
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=client_id, clean_session=False
    ) as client:
        await client.subscribe(f"{root}/#", qos=1)
    payload = msgspec.json.encode({"sensor": "s1", "value": 21.5, "unit": "C"})
    quiet = logging.getLogger("bench.publisher")
    quiet.setLevel(logging.ERROR)  # aiomqtt warns about every pending publish past a few
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, max_inflight_messages=200, logger=quiet
    ) as publisher:
        for start in range(0, count, 200):
            await asyncio.gather(
                *(
                    publisher.publish(f"{root}/line{n % 10}/temperature", payload, qos=1)
                    for n in range(start, min(count, start + 200))
                )
            )


async def bench_mqtt_source(
    server: Server, broker: MosquittoService, topic: str, count: int
) -> float:
    client_id = f"bench-src-{uuid.uuid4().hex[:8]}"
    root = f"bench/{client_id}"
    await queue_messages(broker, client_id, root, count)
    config = MqttSourceConfig(
        url=server.url,
        token=SecretStr(server.token or ""),
        output_topic=topic,
        port=broker.port,
        topics=[f"{root}/#"],
        client_id=client_id,
    )
    started = time.perf_counter()
    result = await Runner(MqttSource(config)).run(timeout=300, count=count)
    elapsed = time.perf_counter() - started
    assert result.records_out >= count, result
    return count / elapsed


async def bench_raw_subscriber(broker: MosquittoService, count: int) -> float:
    client_id = f"bench-raw-{uuid.uuid4().hex[:8]}"
    root = f"bench/{client_id}"
    await queue_messages(broker, client_id, root, count)
    got = 0
    started = time.perf_counter()
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=client_id, clean_session=False
    ) as client:
        await client.subscribe(f"{root}/#", qos=1)
        async for _message in client.messages:
            got += 1
            if got >= count:
                break
    elapsed = time.perf_counter() - started
    return count / elapsed


def ratio_line(name: str, unit: str, ours: list[float], raw: list[float], target: float) -> str:
    a, b = statistics.median(ours), statistics.median(raw)
    verdict = "meets" if a / b >= target else "BELOW"
    return (
        f"{name}: streamport {a:,.0f} {unit}  raw {b:,.0f} {unit}  ratio {a / b:.2f} "
        f"({verdict} target {target})  rounds: ours {[round(x) for x in ours]} "
        f"raw {[round(x) for x in raw]}"
    )


async def main_async(args: argparse.Namespace, work: Path) -> None:
    server = start_server(work / "streamport")
    try:
        with postgres_service(work / "pg") as pg, mosquitto_service(work / "mqtt") as broker:
            data = rows(args.rows)
            topic = "bench-pg"
            await fill_topic(
                server,
                topic,
                [
                    msgspec.json.encode({"id": i, "a": a, "b": b, "label": label})
                    for i, a, b, label in data
                ],
            )
            ours_pg: list[float] = []
            raw_pg: list[float] = []
            ours_mqtt: list[float] = []
            raw_mqtt: list[float] = []
            for n in range(args.rounds):
                ours_pg.append(await bench_destination(server, pg, topic, args.rows, args.batch))
                raw_pg.append(await bench_raw_copy(pg, data, args.batch))
                line = (
                    f"round {n + 1}: pg dest {ours_pg[-1]:,.0f} rows/s, raw COPY "
                    f"{raw_pg[-1]:,.0f} rows/s"
                )
                if args.messages:
                    ours_mqtt.append(
                        await bench_mqtt_source(server, broker, f"bench-mqtt-{n}", args.messages)
                    )
                    raw_mqtt.append(await bench_raw_subscriber(broker, args.messages))
                    line += (
                        f"; mqtt source {ours_mqtt[-1]:,.0f} msg/s, raw "
                        f"aiomqtt {raw_mqtt[-1]:,.0f} msg/s"
                    )
                print(line, flush=True)
            print(ratio_line("(a) PostgreSQL destination", "rows/s", ours_pg, raw_pg, 0.6))
            if args.messages:
                print(ratio_line("(b) MQTT source", "msg/s", ours_mqtt, raw_mqtt, 0.6))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--messages", type=int, default=30_000, help="0 skips (b)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="streamport-bench-connectors-") as tmp:
        work = Path(tmp)
        # PostgreSQL runs as the `postgres` user when we are root: let it into the directory.
        work.chmod(0o755)
        asyncio.run(main_async(args, work))


if __name__ == "__main__":
    main()
