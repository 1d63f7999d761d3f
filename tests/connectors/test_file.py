"""File source and destination through a live gateway."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from streamport.broker import Record
from streamport.connectors import Runner
from streamport.connectors.file import (
    FileDestination,
    FileDestinationConfig,
    FileSource,
    FileSourceConfig,
)
from streamport.errors import ConfigError
from streamport.model import EventData, StreamProperties, TimeseriesData, decode, encode
from tests.connectors.conftest import platform
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


async def test_csv_replays_as_timeseries(gateway: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "laps.csv"
    path.write_text("time,speed,gear\n1700000000000,10.5,3\n1700000000100,11,4\n")
    config = FileSourceConfig(
        path=path,
        format="timeseries",
        timestamp_field="time",
        output_topic="laps",
        progress=True,
        **platform(gateway),
    )
    result = await Runner(FileSource(config)).run(timeout=30)
    assert result.records_out == 3  # properties + 2 rows
    records = await gateway.read("laps", 3)
    messages = [decode(r.value, r.headers) for r in records]
    assert isinstance(messages[0], StreamProperties)
    rows = [m for m in messages if isinstance(m, TimeseriesData)]
    assert [r.numeric_values["speed"] for r in rows] == [[10.5], [11.0]]
    assert rows[1].timestamps == [1_700_000_000_100_000_000]
    assert {r.key for r in records} == {b"laps"}


async def test_jsonl_original_timing_and_a_poison_line(gateway: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps({"t": 1_700_000_000_000, "kind": "start"}),
        "{not json",
        json.dumps({"t": 1_700_000_000_200, "kind": "stop"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    config = FileSourceConfig(
        path=path,
        replay="original",
        speed=10,
        timestamp_field="t",
        event_id_field="kind",
        output_topic="ev",
        **platform(gateway),
    )
    result = await Runner(FileSource(config)).run(timeout=30)
    assert result.records_out == 3
    assert result.dead_letters == 1
    records = await gateway.read("ev", 3)
    events = [m for m in (decode(r.value, r.headers) for r in records) if isinstance(m, EventData)]
    assert [e.id for e in events] == ["start", "stop"]
    (dead,) = await gateway.read("ev-dead-letter", 1)
    assert dead.value == b"{not json"
    assert dict(dead.headers)["x-error-class"] == b"JSONDecodeError"


async def test_parquet_source_as_messages(gateway: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": i, "name": f"n{i}"} for i in range(5)]), path)
    config = FileSourceConfig(
        path=path,
        format="messages",
        key_field="id",
        output_topic="pq",
        batch_size=2,
        **platform(gateway),
    )
    result = await Runner(FileSource(config)).run(timeout=30)
    assert result.records_out == 5
    records = await gateway.read("pq", 5)
    assert [json.loads(r.value)["name"] for r in records] == [f"n{i}" for i in range(5)]
    assert [r.key for r in records] == [str(i).encode() for i in range(5)]


async def test_original_replay_needs_a_timestamp_field(gateway: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("{}\n")
    config = FileSourceConfig(path=path, replay="original", output_topic="x", **platform(gateway))
    with pytest.raises(ConfigError, match="timestamp_field"):
        await Runner(FileSource(config)).run(timeout=30)


async def fill(gw: Gateway, topic: str) -> None:
    await gw.broker.create_topic(topic)
    series = TimeseriesData(
        timestamps=[1, 2], numeric_values={"speed": [1.0, 2.0]}, string_values={"gear": ["a", "b"]}
    )
    await gw.broker.produce(
        topic,
        [
            Record(value=b'{"n":1,"nested":{"a":true}}'),
            Record(value=encode(series), key=b"s1"),
            Record(value=b'{"n":2,"nested":{"a":false}}'),
        ],
    )


@pytest.mark.parametrize("roll", [{"roll_bytes": 1}, {"roll_seconds": 1e-9}])
async def test_destination_jsonl_rolls_by_size_or_time(
    gateway: Gateway, tmp_path: Path, roll: dict[str, Any]
) -> None:
    await fill(gateway, "out1")
    config = FileDestinationConfig(
        input_topic="out1", directory=tmp_path / "files", **roll, **platform(gateway)
    )
    dest = FileDestination(config)
    result = await Runner(dest).run(timeout=30, count=3)
    assert result.commits >= 1
    files = sorted((tmp_path / "files").glob("*.jsonl"))
    assert len(files) == 4  # one row per file: 1 + 2 timeseries rows + 1
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert rows[0] == {"n": 1, "nested.a": True}
    assert rows[1] == {"streamId": "s1", "timestamp": 1, "speed": 1.0, "gear": "a"}
    assert rows[3] == {"n": 2, "nested.a": False}
    assert await gateway.broker.committed(config.group or dest_group(config), "out1") == {0: 3}


def dest_group(config: FileDestinationConfig) -> str:
    return f"connector-file-destination-{config.input_topic}"


async def test_destination_csv_starts_a_file_when_columns_change(
    gateway: Gateway, tmp_path: Path
) -> None:
    await fill(gateway, "out2")
    config = FileDestinationConfig(
        input_topic="out2", directory=tmp_path / "csv", file_format="csv", **platform(gateway)
    )
    await Runner(FileDestination(config)).run(timeout=30, count=3)
    files = sorted((tmp_path / "csv").glob("*.csv"))
    tables = [list(csv.DictReader(f.read_text().splitlines())) for f in files]
    assert [len(t) for t in tables] == [1, 2, 1]
    assert tables[1][1] == {"streamId": "s1", "timestamp": "2", "speed": "2.0", "gear": "b"}


async def test_destination_parquet_one_file_per_checkpoint(
    gateway: Gateway, tmp_path: Path
) -> None:
    await fill(gateway, "out3")
    config = FileDestinationConfig(
        input_topic="out3", directory=tmp_path / "pq", file_format="parquet", **platform(gateway)
    )
    await Runner(FileDestination(config)).run(timeout=30, count=3)
    (file,) = sorted((tmp_path / "pq").glob("*.parquet"))
    rows = pq.read_table(file).to_pylist()
    assert len(rows) == 4
    assert rows[1]["speed"] == 1.0
    assert not list((tmp_path / "pq").glob("*.tmp"))
