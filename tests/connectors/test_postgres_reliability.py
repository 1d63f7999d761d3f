"""A PostgreSQL destination killed (SIGKILL) in the middle of a batch loses nothing: after a
restart every record is in the table exactly once (upsert on the key)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid

import psycopg
import pytest
from pydantic import SecretStr

from streamport.broker import Record
from streamport.connectors.postgres import PostgresDestination, PostgresDestinationConfig
from streamport.connectors.runtime import Runner
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration

RECORDS = 4_000

# The destination in a process of its own, so the test can kill it like a crash would.
CHILD = """
import asyncio, json, sys
from streamport.connectors.postgres import PostgresDestination, PostgresDestinationConfig
from streamport.connectors.runtime import Runner

config = PostgresDestinationConfig.model_validate(json.loads(sys.argv[1]))
asyncio.run(Runner(PostgresDestination(config)).run())
"""


async def scalar(conn: psycopg.AsyncConnection[tuple[int]], sql: str) -> int:
    cur = await conn.execute(sql.encode())
    row = await cur.fetchone()
    assert row is not None
    return int(row[0] or 0)


async def test_destination_killed_mid_batch_ends_with_every_record_exactly_once(
    gateway: Gateway, postgres_dsn: str
) -> None:
    table = f"kill_{uuid.uuid4().hex[:8]}"
    app = f"sp-{table}"
    topic = "kill-in"
    await gateway.broker.create_topic(topic)
    for start in range(0, RECORDS, 1_000):
        await gateway.broker.produce(
            topic,
            [
                Record(json.dumps({"id": n, "v": n * 2}).encode())
                for n in range(start, start + 1_000)
            ],
        )
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint)".encode())
        # Each row takes a moment, so a batch's transaction is open long enough to be caught.
        await conn.execute(
            f"CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.0005); RETURN NEW; END $$".encode()
        )
        await conn.execute(
            f"CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_slow()".encode()
        )
        settings = {
            "url": gateway.url,
            "token": gateway.token,
            "input_topic": topic,
            "group": f"g-{table}",
            "dsn": f"{postgres_dsn} application_name={app}",
            "table": table,
            "key": ["id"],
            "batch_size": 500,
            # No checkpoint before the kill: every row written so far is replayed on restart.
            "commit_every": 10_000,
            "commit_interval": 600,
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            json.dumps(settings),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # Wait until some batches are in and one is being written (its transaction open,
            # not the first one), then kill the process.
            async with asyncio.timeout(120):
                while True:
                    assert child.returncode is None, "the destination exited early"
                    written = await scalar(conn, f"SELECT count(*) FROM {table}")
                    busy = await scalar(
                        conn,
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        f"'{app}' AND state = 'active' AND query LIKE 'INSERT%'",
                    )
                    if written >= 1_200 and busy:
                        break
                    await asyncio.sleep(0.005)
            child.send_signal(signal.SIGKILL)
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
        before = await scalar(conn, f"SELECT count(*) FROM {table}")
        assert 0 < before < RECORDS
        committed = sum((await gateway.broker.committed(f"g-{table}", topic)).values())
        assert committed == 0

        # Restart in-process; stop once the table is complete.
        config = PostgresDestinationConfig.model_validate(
            {**settings, "dsn": SecretStr(postgres_dsn)}
        )
        runner = Runner(PostgresDestination(config))
        task = asyncio.create_task(runner.run(timeout=120))
        async with asyncio.timeout(120):
            while await scalar(conn, f"SELECT count(*) FROM {table}") < RECORDS:
                assert not task.done(), task.result()
                await asyncio.sleep(0.05)
        runner.stop()
        result = await task
        # Everything since the last checkpoint is read again (at-least-once), rows already in
        # the table included ...
        assert result.records_in == RECORDS
        # ... and the upsert leaves each exactly once.
        assert await scalar(conn, f"SELECT count(*) FROM {table}") == RECORDS
        assert await scalar(conn, f"SELECT count(DISTINCT id) FROM {table}") == RECORDS
        assert await scalar(conn, f"SELECT sum(v) FROM {table}") == sum(
            n * 2 for n in range(RECORDS)
        )
        assert await scalar(conn, f"SELECT count(*) FROM {table} WHERE v <> id * 2") == 0
