"""PostgreSQL source and destination end to end: PostgreSQL 15 <-> connector <-> a live gateway."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from streamport.broker import ConsumedRecord, Record
from streamport.connectors.base import SinkRecord
from streamport.connectors.postgres import (
    PostgresDestination,
    PostgresDestinationConfig,
    PostgresSource,
    PostgresSourceConfig,
    _copy_text,
    _RowCodec,
)
from streamport.connectors.runtime import Runner
from streamport.model import decode
from tests.connectors.conftest import platform
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


def server(gw: Gateway) -> dict[str, Any]:
    """The settings that point a connector at the gateway (typed loosely for the configs)."""
    return dict(platform(gw))


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(sql.encode(), params or None)
        return await cur.fetchall() if cur.description else []


async def test_destination_creates_the_table_from_writer_api_timeseries_and_upserts(
    gateway: Gateway, postgres_dsn: str
) -> None:
    table = unique("cars")
    body = {
        "timestamps": [1_000, 2_000, 3_000],
        "numericValues": {"speed": [10.5, 20.5, None]},
        "stringValues": {"gear": ["1", "2", "3"]},
        "tagValues": {"driver": ["ann", "ann", "bob"]},
    }
    async with gateway.client() as http:
        for _ in range(2):  # the same data twice: the upsert keeps one row per key
            response = await http.post(
                "/writer/topics/cars/streams/car-1/parameters/data", json=body
            )
            assert response.status_code == 200, response.text
        response = await http.post(
            "/writer/topics/cars/streams/car-1/parameters/data",
            json={"timestamps": [3_000], "numericValues": {"speed": [33.0], "rpm": [4_000]}},
        )
        assert response.status_code == 200, response.text
    config = PostgresDestinationConfig(
        input_topic="cars",
        dsn=SecretStr(postgres_dsn),
        table=table,
        key=["stream_id", "timestamp"],
        **server(gateway),
    )
    high = sum(w.high for w in await gateway.broker.watermarks("cars"))
    result = await Runner(PostgresDestination(config)).run(timeout=60, count=high)
    assert result.records_in == high
    rows = await query(
        postgres_dsn,
        f'SELECT stream_id, "timestamp", speed, gear, driver, rpm FROM {table} ORDER BY 2',
    )
    assert rows == [
        ("car-1", 1_000, 10.5, "1", "ann", None),
        ("car-1", 2_000, 20.5, "2", "ann", None),
        ("car-1", 3_000, 33.0, "3", "bob", 4_000.0),  # updated by the last message, rpm added
    ]
    types = dict(
        await query(
            postgres_dsn,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            table,
        )
    )
    assert types["timestamp"] == "bigint"
    assert types["speed"] == "double precision"
    assert types["gear"] == "text"
    primary = await query(
        postgres_dsn,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
        table,
    )
    assert sorted(r[0] for r in primary) == ["stream_id", "timestamp"]


async def test_destination_appends_json_objects_and_dead_letters_a_poison_record(
    gateway: Gateway, postgres_dsn: str
) -> None:
    table = unique("orders")
    await gateway.broker.create_topic("orders")
    await gateway.broker.produce(
        "orders",
        [
            Record(b'{"id": 1, "total": 9.5, "meta": {"a": 1}}'),
            Record(b'"not an object"'),
            Record(b'{"id": 2, "total": 3, "note": "new column"}'),
        ],
    )
    config = PostgresDestinationConfig(
        input_topic="orders", dsn=SecretStr(postgres_dsn), table=table, **server(gateway)
    )
    result = await Runner(PostgresDestination(config)).run(timeout=60, count=3)
    assert result.dead_letters == 1
    rows = await query(postgres_dsn, f"SELECT id, total, meta, note FROM {table} ORDER BY id")
    assert rows == [(1, 9.5, {"a": 1}, None), (2, 3.0, None, "new column")]
    dead = await gateway.read("orders-dead-letter", 1)
    assert dead[0].value == b'"not an object"'
    assert b"JSON object" in dict(dead[0].headers)["x-error"]


async def test_source_reads_incrementally_and_resumes_from_its_checkpoint(
    gateway: Gateway, postgres_dsn: str, tmp_path: Path
) -> None:
    table = unique("readings")
    await query(
        postgres_dsn,
        f"CREATE TABLE {table} (id bigserial PRIMARY KEY, sensor text, value double precision, "
        "at timestamptz DEFAULT now())",
    )
    await query(
        postgres_dsn,
        f"INSERT INTO {table} (sensor, value) SELECT 's' || n, n FROM generate_series(1, 5) n",
    )
    state = tmp_path / "state.json"

    def config(**extra: Any) -> PostgresSourceConfig:
        return PostgresSourceConfig(
            output_topic="readings",
            dsn=SecretStr(postgres_dsn),
            table=table,
            cursor_column="id",
            key_field="sensor",
            batch_size=2,
            poll_interval=0.05,
            state_file=state,
            **extra,
            **server(gateway),
        )

    first = await Runner(PostgresSource(config())).run(timeout=60, count=5)
    assert first.records_out == 5
    assert msgspec.json.decode(state.read_bytes()) == {"cursor": "5"}

    # Rows added while the source is stopped; a restart reads only those.
    await query(
        postgres_dsn,
        f"INSERT INTO {table} (sensor, value) SELECT 's' || n, n FROM generate_series(6, 8) n",
    )
    second = await Runner(PostgresSource(config())).run(timeout=60, count=3)
    assert second.records_out == 3
    records = await gateway.read("readings", 8)
    values = [msgspec.json.decode(r.value) for r in records]
    assert [v["id"] for v in values] == list(range(1, 9))
    assert [r.key for r in records] == [f"s{n}".encode() for n in range(1, 9)]
    assert values[0]["value"] == 1.0 and "at" in values[0]
    await asyncio.sleep(0.3)  # a third run would find nothing new: the topic has exactly 8
    assert (await gateway.broker.watermarks("readings"))[0].high == 8


async def test_source_writes_events_in_a_stream(gateway: Gateway, postgres_dsn: str) -> None:
    table = unique("alarms")
    await query(postgres_dsn, f"CREATE TABLE {table} (seq int, kind text, at bigint)")
    await query(postgres_dsn, f"INSERT INTO {table} VALUES (1, 'overheat', 1700000000000)")
    config = PostgresSourceConfig(
        output_topic="alarms",
        dsn=SecretStr(postgres_dsn),
        table=table,
        cursor_column="seq",
        format="events",
        event_id_field="kind",
        timestamp_field="at",
        stream_id="plant-1",
        **server(gateway),
    )
    result = await Runner(PostgresSource(config)).run(timeout=60, count=1)
    assert (result.records_in, result.records_out) == (1, 2)  # the stream's properties first
    records = await gateway.read("alarms", 2)  # stream properties, then the event
    event = decode(records[1].value, records[1].headers)
    assert records[1].key == b"plant-1"
    assert getattr(event, "id", None) == "overheat"
    assert getattr(event, "timestamp", None) == 1_700_000_000_000_000_000


async def test_destination_plain_json_batches_evolve_the_schema_and_dead_letter_refused_rows(
    gateway: Gateway, postgres_dsn: str
) -> None:
    # Every record is a plain JSON object: the batch goes to PostgreSQL as one JSON document.
    table = unique("readings")
    topic = unique("readings")
    await gateway.broker.create_topic(topic)
    await gateway.broker.produce(
        topic,
        [
            Record(b'{"id": 1, "v": 1.5, "tags": ["a"], "ok": true}'),
            Record(b'{"id": 2, "v": 2}'),
        ],
    )
    config = PostgresDestinationConfig(
        input_topic=topic, dsn=SecretStr(postgres_dsn), table=table, **server(gateway)
    )
    first = await Runner(PostgresDestination(config)).run(timeout=60, count=2)
    assert (first.records_out, first.dead_letters) == (2, 0)
    await gateway.broker.produce(
        topic,
        [
            Record(b'{"id": 3, "v": 3.25, "unit": "C"}'),
            Record(b'{"id": "three", "v": 1}'),  # PostgreSQL refuses a text in a bigint column
            Record(b'{"id": 4, "unit": "K\\\\n\\"x\\""}'),
        ],
    )
    second = await Runner(PostgresDestination(config)).run(timeout=60, count=3)
    assert (second.records_out, second.dead_letters) == (2, 1)
    rows = await query(postgres_dsn, f"SELECT id, v, tags, ok, unit FROM {table} ORDER BY id")
    assert rows == [
        (1, 1.5, ["a"], True, None),
        (2, 2.0, None, None, None),
        (3, 3.25, None, None, "C"),
        (4, None, None, None, 'K\\n"x"'),
    ]
    dead = await gateway.read(f"{topic}-dead-letter", 1)
    assert dead[0].value == b'{"id": "three", "v": 1}'


async def test_copy_text_buffer_stores_what_write_row_stores(postgres_dsn: str) -> None:
    # The destination formats whole columns into one COPY buffer; psycopg's write_row (row by
    # row) is the reference: both tables must hold the same values.
    columns = ["i", "f", "s", "b", "j"]
    rows: list[dict[str, Any]] = [
        {"i": 1, "f": 1.5, "s": "plain", "b": True, "j": {"k": "a\nb", "q": '"\\'}},
        {"i": -(2**62), "f": 2, "s": "tab\there\\back\r\nnew", "b": False, "j": [1, "x"]},
        {"i": None, "f": None, "s": None, "b": None, "j": None},
        {"i": 0, "f": 1e-7, "s": "ünïcode ✓ \\N", "b": True, "j": "just text"},
        {"f": -0.0, "s": "", "j": 3.25},  # missing fields are nulls
        {"i": 7, "f": 123456789.125, "s": "\\.", "b": False, "j": {"nested": {"deep": [None]}}},
    ]
    kinds = "i bigint, f double precision, s text, b boolean, j jsonb"
    a, b = unique("by_row"), unique("by_buffer")
    text = _copy_text(rows, columns, {"j"})
    assert text is not None
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        for table in (a, b):
            await conn.execute(f"CREATE TABLE {table} (n serial, {kinds})".encode())
        names = ", ".join(columns)
        async with conn.cursor() as cur:
            async with cur.copy(f"COPY {a} ({names}) FROM STDIN".encode()) as copy:
                for row in rows:
                    values = [row.get(c) for c in columns]
                    j = values[-1]
                    values[-1] = None if j is None else Jsonb(j)
                    await copy.write_row(values)
            async with cur.copy(f"COPY {b} ({names}) FROM STDIN".encode()) as copy:
                await copy.write(text)
    by_row = await query(postgres_dsn, f"SELECT {names} FROM {a} ORDER BY n")
    by_buffer = await query(postgres_dsn, f"SELECT {names} FROM {b} ORDER BY n")
    assert by_buffer == by_row
    assert len(by_buffer) == len(rows)
    assert by_buffer[1][2] == "tab\there\\back\r\nnew"
    # A column this formatter does not cover (non-finite float, mixed kinds) goes row by row.
    assert _copy_text([{"f": float("inf")}], ["f"], set()) is None
    assert _copy_text([{"s": "a"}, {"s": 1}], ["s"], set()) is None


async def test_destination_copies_big_batches_in_chunks_with_a_row_by_row_fallback(
    gateway: Gateway, postgres_dsn: str
) -> None:
    # 2,500 records in one batch: three chunks; the second mixes a number into the text column
    # (psycopg adapts it), so that chunk goes row by row and the others as buffers.
    table = unique("chunks")
    topic = unique("chunks")
    await gateway.broker.create_topic(topic)
    values = [msgspec.json.encode({"n": n, "x": n / 4, "s": f"r{n}"}) for n in range(2_500)]
    values[1_234] = b'{"n": 1234, "x": 0.5, "s": 77}'
    await gateway.broker.produce(topic, [Record(v) for v in values])
    config = PostgresDestinationConfig(
        input_topic=topic,
        dsn=SecretStr(postgres_dsn),
        table=table,
        batch_size=2_500,
        **server(gateway),
    )
    result = await Runner(PostgresDestination(config)).run(timeout=60, count=2_500)
    assert (result.records_out, result.dead_letters) == (2_500, 0)
    rows = await query(postgres_dsn, f"SELECT n, x, s FROM {table} ORDER BY n")
    expected = [(n, n / 4, f"r{n}") for n in range(2_500)]
    expected[1_234] = (1234, 0.5, "77")
    assert rows == expected


def sink_records(values: list[bytes], headers: Any = ()) -> list[SinkRecord]:
    return SinkRecord.batch_of(
        ConsumedRecord("t", 0, n, None, v, headers, 0) for n, v in enumerate(values)
    )


TYPED_COLUMNS = {
    "i": "bigint",
    "f": "double precision",
    "s": "text",
    "b": "boolean",
    "v": "character varying(40)",
    "j": "jsonb",
}


async def test_typed_rows_store_what_write_row_stores(postgres_dsn: str) -> None:
    # The typed path (JSON objects -> one COPY buffer through msgspec and bytes operations)
    # against psycopg's write_row of the decoded values: both tables hold the same values.
    objects: list[dict[str, Any]] = [
        {"i": 1, "f": 1.5, "s": "plain", "b": True, "v": "x"},
        {"i": -(2**63), "f": 2, "s": "tab\there\\back\r\nnew\b\f", "b": False, "j": None},
        {"i": None, "f": None, "s": None, "b": None, "v": None},
        {"i": 2**63 - 1, "f": 1e-7, "s": "ünïcode ✓ \\N null", "v": "null"},
        {"f": -0.0, "s": "", "v": "nullable"},  # missing fields are nulls
        {"s": "\\.", "f": 123456789.125, "i": 0, "v": "ab"},  # any order
        {"s": "null", "b": False},
    ]
    values = [msgspec.json.encode(o) for o in objects]
    codec = _RowCodec(TYPED_COLUMNS, [])
    text = codec.copy_text(sink_records(values))
    assert text is not None
    columns = list(TYPED_COLUMNS)
    kinds = ", ".join(f"{name} {kind}" for name, kind in TYPED_COLUMNS.items())
    a, b = unique("by_row"), unique("by_typed")
    names = ", ".join(columns)
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        for table in (a, b):
            await conn.execute(f"CREATE TABLE {table} (n serial, {kinds})".encode())
        async with conn.cursor() as cur:
            async with cur.copy(f"COPY {a} ({names}) FROM STDIN".encode()) as copy:
                for o in objects:
                    await copy.write_row([o.get(c) for c in columns])
            async with cur.copy(f"COPY {b} ({names}) FROM STDIN".encode()) as copy:
                await copy.write(text)
    by_row = await query(postgres_dsn, f"SELECT {names} FROM {a} ORDER BY n")
    by_typed = await query(postgres_dsn, f"SELECT {names} FROM {b} ORDER BY n")
    assert by_typed == by_row
    assert len(by_typed) == len(objects)
    assert by_typed[1][2] == "tab\there\\back\r\nnew\b\f"
    assert by_typed[3][2] == "ünïcode ✓ \\N null"
    assert by_typed[4][2] == "" and by_typed[6][2] == "null"


@pytest.mark.parametrize(
    "value",
    [
        b'{"s": "a \\"quote\\""}',  # a quote in a string
        b'{"s": "a,b"}',  # a comma in a string
        b'{"v": "a]b"}',  # a bracket in a string
        b'{"s": "ctl\\u0001"}',  # a control character (a \\u escape)
        b'{"new": 1}',  # a field that is no column yet
        b'{"s": 5}',  # a number in a text column
        b'{"i": 1.0}',  # a float in a bigint column
        b'{"i": 99999999999999999999}',  # beyond 64 bits
        b'{"b": 1}',  # a number in a boolean column
        b'{"f": 1e400}',  # beyond a double
        b'{"j": {"k": 1}}',  # a jsonb value
        b"[1, 2]",  # not an object
        b"not json",
    ],
)
def test_typed_rows_leave_what_they_do_not_cover_to_the_general_path(value: bytes) -> None:
    codec = _RowCodec(TYPED_COLUMNS, [])
    good = b'{"i": 1, "s": "ok"}'
    assert codec.copy_text(sink_records([good, good])) is not None
    assert codec.copy_text(sink_records([good, value])) is None


def test_typed_rows_leave_repeated_keys_to_the_general_path_and_refuse_a_null_key() -> None:
    codec = _RowCodec({"k": "text", "n": "bigint"}, ["k"])
    assert codec.copy_text(sink_records([b'{"k": "a", "n": 1}', b'{"k": "b"}'])) == (
        b"a\t1\nb\t\\N\n"
    )
    # a key twice: its rows are merged by the general path (`_last_per_key`)
    batch = sink_records([b'{"k": "a", "n": 1}', b'{"k": "b", "n": 2}', b'{"n": 3, "k": "a"}'])
    assert codec.copy_text(batch) is None
    assert codec.copy_text(sink_records([b'{"k": "a", "n": 1}', b'{"n": 2}'])) is None
    compound = _RowCodec({"k": "text", "t": "bigint", "n": "bigint"}, ["k", "t"])
    batch = sink_records([b'{"k": "a", "t": 1, "n": 1}', b'{"k": "a", "t": 2}'])
    assert compound.copy_text(batch) == b"a\t1\t1\na\t2\t\\N\n"
    assert compound.copy_text(sink_records([b'{"k": "a", "t": 1}', b'{"k": "a", "t": 1}'])) is None
    assert compound.copy_text(sink_records([b'{"k": "a", "t": null}'])) is None
    # records with headers (Quix messages) and tables with Quix-shaped columns never take it
    assert codec.copy_text(sink_records([b'{"k": "a"}'], (("h", b"1"),))) is None
    assert not _RowCodec({"streamId": "text"}, []).usable
    assert not _RowCodec({"k": "text"}, ["missing"]).usable


async def test_destination_upserts_batches_on_the_typed_path(
    gateway: Gateway, postgres_dsn: str
) -> None:
    # The first batch creates the table (general path); the next ones take the typed path,
    # prepared while the previous batch is written: upsert, the rows of a key merged (later
    # non-null values win), nulls keep the stored value, a refused value dead-letters its record
    # only.
    table = unique("typed")
    topic = unique("typed")
    await gateway.broker.create_topic(topic)
    values = [
        b'{"id": 1, "x": 1.5, "s": "one"}',
        b'{"id": 2, "x": 2.5, "s": "two"}',
        b'{"id": 3, "x": 3.5, "s": "three"}',
        b'{"id": 1, "x": 10, "s": null}',  # x updated, s kept
        b'{"id": 2, "s": "deux"}',
        b'{"id": 2, "s": "zwei"}',  # the later non-null value of the batch wins
        b'{"id": 4, "x": 4.5, "s": "four"}',
        b'{"id": "five", "x": 5.5}',  # refused by PostgreSQL: dead-lettered
        b'{"id": 6, "x": 6.5, "s": "six"}',
    ]
    await gateway.broker.produce(topic, [Record(v) for v in values])
    config = PostgresDestinationConfig(
        input_topic=topic,
        dsn=SecretStr(postgres_dsn),
        table=table,
        key=["id"],
        batch_size=3,
        **server(gateway),
    )
    result = await Runner(PostgresDestination(config)).run(timeout=60, count=len(values))
    assert (result.records_out, result.dead_letters) == (8, 1)
    rows = await query(postgres_dsn, f"SELECT id, x, s FROM {table} ORDER BY id")
    assert rows == [
        (1, 10.0, "one"),
        (2, 2.5, "zwei"),
        (3, 3.5, "three"),
        (4, 4.5, "four"),
        (6, 6.5, "six"),
    ]
    dead = await gateway.read(f"{topic}-dead-letter", 1)
    assert dead[0].value == b'{"id": "five", "x": 5.5}'
