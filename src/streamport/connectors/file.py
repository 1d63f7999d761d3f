"""File source (CSV, JSON lines, Parquet; replayed as fast as possible or at original timing) and
file destination (JSON lines, CSV, Parquet; rolled by size or time).

All file I/O goes through ``asyncio.to_thread`` (one visible door): reading a chunk of rows,
writing a batch, fsync.

Source example::

    output_topic: laps
    path: laps.csv
    replay: original        # or fast
    speed: 2.0              # twice as fast as recorded
    timestamp_field: time   # needed by replay: original
    format: timeseries

Destination example::

    input_topic: laps
    directory: /data/laps
    file_format: parquet
    roll_bytes: 67108864
    roll_seconds: 3600
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field
from rich.progress import Progress

from streamport.connectors.base import Destination, SinkRecord, Source, convert
from streamport.connectors.config import DestinationConfig, SourceConfig
from streamport.connectors.mapping import Mapper, MappingSettings, get_path, to_nanoseconds
from streamport.connectors.runtime import Output
from streamport.errors import ConfigError, ValidationError

FileFormat = Literal["auto", "csv", "jsonl", "parquet"]
CHUNK_ROWS = 1000  # rows read per trip to the reading thread


def _format_of(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ConfigError(f"path: cannot tell the format of {path.name}: set file_format")


def _scalar(text: str) -> Any:
    """CSV cells are text: numbers become numbers, the rest stays text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class FileSourceConfig(SourceConfig, MappingSettings):
    path: Path = Field(description="file to read")
    file_format: FileFormat = Field(default="auto", description="auto, csv, jsonl or parquet")
    replay: Literal["fast", "original"] = Field(
        default="fast", description="fast, or original timing (needs timestamp_field)"
    )
    speed: float = Field(default=1.0, gt=0, description="original replay: time speed-up factor")
    batch_size: int = Field(default=500, ge=1, description="records per produce (fast replay)")
    progress: bool = Field(default=False, description="show a progress bar on stderr")


class FileSource(Source[FileSourceConfig]):
    name = "file-source"
    summary = "replay a CSV, JSON lines or Parquet file (fast or at original timing)"
    config_class = FileSourceConfig

    def __init__(self, config: FileSourceConfig) -> None:
        super().__init__(config)
        self._mapper = Mapper(config, default_stream=config.path.stem)
        self._rows: Iterator[list[Any]] | None = None
        self._file: IO[str] | None = None
        self.total = 0

    async def setup(self) -> None:
        c = self.config
        if c.replay == "original" and not c.timestamp_field:
            raise ConfigError("timestamp_field: replay: original needs it set")
        if not c.path.is_file():
            raise ConfigError(f"path: {c.path} does not exist")
        self._rows, self.total = await asyncio.to_thread(self._open)

    def _open(self) -> tuple[Iterator[list[Any]], int]:
        c = self.config
        kind = _format_of(c.path, c.file_format)
        if kind == "parquet":
            import pyarrow.parquet as pq  # type: ignore[import-untyped]

            parquet = pq.ParquetFile(c.path)
            batches = (b.to_pylist() for b in parquet.iter_batches(batch_size=CHUNK_ROWS))
            return batches, parquet.metadata.num_rows
        with c.path.open("rb") as counting:
            total = sum(1 for line in counting if line.strip())
        self._file = c.path.open(newline="", encoding="utf-8")
        if kind == "csv":
            total = max(0, total - 1)  # the header
            rows: Iterator[Any] = (
                {k: _scalar(v) if isinstance(v, str) else v for k, v in row.items()}
                for row in csv.DictReader(self._file)
            )
        else:
            rows = (line.rstrip("\r\n") for line in self._file if line.strip())
        return _chunks(rows), total

    async def close(self) -> None:
        if self._file is not None:
            await asyncio.to_thread(self._file.close)

    async def run(self, output: Output) -> None:
        assert self._rows is not None
        c = self.config
        progress = Progress(transient=True, disable=not c.progress)
        with progress:
            task = progress.add_task(f"{c.path.name} -> {c.output_topic}", total=self.total)
            first: tuple[int, float] | None = None  # (record ns, wall monotonic) of the first row
            while not output.stopping.is_set():
                chunk = await asyncio.to_thread(next, self._rows, None)
                if chunk is None:
                    return
                output.metrics.read(len(chunk))
                pending = []
                for row in chunk:
                    try:
                        item = json.loads(row) if isinstance(row, str) else row
                        record = self._mapper.map(item)
                        stamp = (
                            to_nanoseconds(get_path(item, c.timestamp_field))
                            if c.replay == "original"
                            else 0
                        )
                    except (ValueError, TypeError, ValidationError) as exc:
                        raw = row.encode() if isinstance(row, str) else json.dumps(row).encode()
                        await output.reject(raw, exc)
                        continue
                    if c.replay == "original":
                        if first is None:
                            first = (stamp, time.monotonic())
                        due = first[1] + (stamp - first[0]) / 1e9 / c.speed
                        await output.sleep(max(0.0, due - time.monotonic()))
                        await output.send([*self._mapper.preamble(), record])
                    else:
                        pending.append(record)
                        if len(pending) >= c.batch_size:
                            await output.send([*self._mapper.preamble(), *pending])
                            pending = []
                    progress.advance(task)
                await output.send([*self._mapper.preamble(), *pending] if pending else [])


def _chunks(rows: Iterator[Any]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- destination ---------------------------------------------------------------------------------


def rows_of(record: SinkRecord) -> list[dict[str, Any]]:
    """Flat rows of one record: a timeseries message gives one row per timestamp
    (``streamId``, ``timestamp``, one column per parameter); other objects are flattened with
    ``.``; other values become ``{"value": ...}``."""
    payload = record.payload()
    if isinstance(payload, dict) and payload.get("type") == "TimeseriesData":
        out: list[dict[str, Any]] = []
        for i, stamp in enumerate(payload["timestamps"]):
            row: dict[str, Any] = {"streamId": payload["streamId"], "timestamp": stamp}
            for group in ("numericValues", "stringValues", "tagValues", "binaryValues"):
                for name, values in payload.get(group, {}).items():
                    row[name] = values[i]
            out.append(row)
        return out
    if isinstance(payload, dict):
        return [_flat(payload)]
    return [{"value": payload}]


def _flat(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, dict | list):
            out[f"{prefix}{key}"] = json.dumps(value)
        else:
            out[f"{prefix}{key}"] = value
    return out


class FileDestinationConfig(DestinationConfig):
    directory: Path = Field(description="directory the files are written to")
    file_format: Literal["jsonl", "csv", "parquet"] = Field(
        default="jsonl", description="jsonl, csv or parquet"
    )
    prefix: str = Field(default="part", description="file name prefix")
    roll_bytes: int = Field(default=64 * 1024 * 1024, ge=1, description="roll at this size")
    roll_seconds: float = Field(default=3600.0, gt=0, description="roll after this many seconds")


class FileDestination(Destination[FileDestinationConfig]):
    """JSON lines and CSV are appended and fsynced at each checkpoint; a file is closed and a new
    one started when it reaches ``roll_bytes`` or ``roll_seconds`` (or, for CSV, when the columns
    change). Parquet cannot be appended to, so each checkpoint writes one complete Parquet file.
    After a crash the records since the last checkpoint are written again (at-least-once)."""

    name = "file-destination"
    summary = "write a topic to JSON lines, CSV or Parquet files, rolled by size or time"
    config_class = FileDestinationConfig

    def __init__(self, config: FileDestinationConfig) -> None:
        super().__init__(config)
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._columns: list[str] | None = None
        self._buffer: list[dict[str, Any]] = []  # parquet rows until the checkpoint
        self._seq = 0
        self.files: list[Path] = []

    async def setup(self) -> None:
        await asyncio.to_thread(self.config.directory.mkdir, parents=True, exist_ok=True)

    def _new_path(self) -> Path:
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        ext = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}[self.config.file_format]
        path = (
            self.config.directory
            / f"{self.config.prefix}-{stamp}-{os.getpid()}-{self._seq:06d}.{ext}"
        )
        self.files.append(path)
        return path

    async def write(self, batch: list[SinkRecord]) -> None:
        rows = [row for rows in convert(batch, rows_of) for row in rows]
        if self.config.file_format == "parquet":
            self._buffer.extend(rows)
            return
        await asyncio.to_thread(self._append, rows)

    def _append(self, rows: list[dict[str, Any]]) -> None:
        c = self.config
        for row in rows:
            if self._file is not None and (
                self._file.tell() >= c.roll_bytes
                or time.monotonic() - self._opened >= c.roll_seconds
                or (c.file_format == "csv" and list(row) != self._columns)
            ):
                self._close_file()
            if self._file is None:
                self._path = self._new_path()
                self._file = self._path.open("w", newline="", encoding="utf-8")
                self._opened = time.monotonic()
                if c.file_format == "csv":
                    self._columns = list(row)
                    csv.writer(self._file).writerow(self._columns)
            if c.file_format == "csv":
                csv.writer(self._file).writerow(["" if v is None else v for v in row.values()])
            else:
                self._file.write(json.dumps(row, separators=(",", ":")) + "\n")

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def _sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def _write_parquet(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._new_path()
        tmp = path.with_suffix(".parquet.tmp")
        # from_pylist takes its columns from the first row: give every row every column.
        columns = dict.fromkeys(name for row in rows for name in row)
        table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
        pq.write_table(table, tmp)
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)

    async def flush(self) -> None:
        if self.config.file_format == "parquet":
            if self._buffer:
                rows, self._buffer = self._buffer, []
                try:
                    await asyncio.to_thread(self._write_parquet, rows)
                except BaseException:
                    self._buffer = rows + self._buffer
                    raise
            return
        await asyncio.to_thread(self._sync)

    async def close(self) -> None:
        await asyncio.to_thread(self._close_file)
