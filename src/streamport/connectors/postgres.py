"""PostgreSQL source and destination (psycopg 3).

The **source** reads a table incrementally by an increasing column (a ``bigserial`` id, an
insertion time): ``SELECT * … WHERE col > <last value> ORDER BY col LIMIT n``, every
``poll_interval`` seconds once it has caught up. Each row becomes a record (``format``: the row as a
JSON message, an event or a timeseries row, see `streamport.connectors.mapping`). The last value
written durably is kept in ``state_file`` (like Kafka Connect's offset file), so a restarted source
resumes after it: at-least-once (rows written but not yet checkpointed are sent again).

The **destination** writes rows into a table: ``COPY`` in batches, one transaction per batch. The
table is created from the stream's schema (and columns added as new fields appear); with ``key``
set, rows are upserted on those columns (``COPY`` into a temporary table, then
``INSERT … ON CONFLICT (key) DO UPDATE``), so batches replayed after a crash leave each record
exactly once; an upsert sets the fields the record has and keeps stored values where the record
has none (null or absent). Rows: a Quix ``TimeseriesData`` gives one row per timestamp (``stream_id``,
``timestamp`` in ns, a column per parameter and tag), an ``EventData`` one row (``stream_id``,
``timestamp``, ``event_id``, ``value``, tags), a JSON object its fields; other stream messages
(properties, definitions) are skipped.

Example (YAML)::

    connector: postgres-destination
    input_topic: cars
    dsn: postgresql://writer:secret@db/telemetry
    table: car_data
    key: [stream_id, timestamp]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import gc
import itertools
import logging
import operator
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import Field, SecretStr

from streamport.connectors.base import Destination, SinkRecord, Source, convert
from streamport.connectors.config import DestinationConfig, SourceConfig
from streamport.connectors.mapping import Format, Mapper, MappingSettings
from streamport.connectors.retry import Stopped
from streamport.errors import ConfigError, ConnectorError, RecordRejected

if TYPE_CHECKING:
    from streamport.connectors.runtime import Output

log = logging.getLogger("streamport.connectors.postgres")

Row = dict[str, Any]


class _ConnState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    CLOSED = "closed"


def _table_ident(name: str) -> sql.Identifier:
    """``schema.table`` or ``table`` as a quoted identifier."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(f"table {name!r} must be TABLE or SCHEMA.TABLE")
    return sql.Identifier(*parts)


def _translate(exc: psycopg.Error, what: str) -> ConnectorError:
    """One boundary for psycopg's errors: connection trouble is retriable, the rest is not."""
    retriable = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return ConnectorError(f"PostgreSQL {what} failed: {exc}".strip(), retriable=retriable)


async def _connect(dsn: SecretStr, *, autocommit: bool) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(dsn.get_secret_value(), autocommit=autocommit)
    except psycopg.Error as exc:
        # The message never holds the DSN (and so no password); retriable: the server may be
        # starting or unreachable for a moment.
        raise ConnectorError(f"cannot connect to PostgreSQL: {exc}", retriable=True) from exc


# --- source --------------------------------------------------------------------------------


class PostgresSourceConfig(SourceConfig, MappingSettings):
    format: Format = Field(
        default="messages", description="messages (row as JSON), events or timeseries"
    )
    dsn: SecretStr = Field(description="libpq connection string or postgresql:// URI")
    table: str = Field(description="table (or view) to read: TABLE or SCHEMA.TABLE")
    cursor_column: str = Field(description="increasing column rows are read in order of")
    start_after: str | None = Field(
        default=None,
        description="read rows whose cursor column is above this value on the first run "
        "[default: all rows]",
    )
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="rows per query")
    poll_interval: float = Field(
        default=1.0, gt=0, description="seconds between queries once caught up"
    )
    state_file: Path | None = Field(
        default=None,
        description="file keeping the last value written durably, to resume from "
        "[default: none: a restart reads from start_after]",
    )


class PostgresSource(Source[PostgresSourceConfig]):
    """A table read incrementally by an increasing column → a streamport topic."""

    name = "postgres-source"
    summary = "read a PostgreSQL table incrementally by an increasing column, resumable"
    config_class = PostgresSourceConfig

    def __init__(self, config: PostgresSourceConfig) -> None:
        super().__init__(config)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._conn_state = _ConnState.DISCONNECTED
        self._mapper = Mapper(config, default_stream=config.table)
        self._query = sql.SQL("SELECT * FROM {table} {where} ORDER BY {col} LIMIT {limit}")
        self._table = _table_ident(config.table)
        self.cursor: str | None = config.start_after

    async def setup(self) -> None:
        if self.config.state_file is not None:
            saved = await asyncio.to_thread(_read_state, self.config.state_file)
            if saved is not None:
                self.cursor = saved
        self._conn = await _connect(self.config.dsn, autocommit=True)
        self._conn_state = _ConnState.CONNECTED

    async def _fetch(self) -> list[Row]:
        if self._conn is None or self._conn.closed:
            self._conn = await _connect(self.config.dsn, autocommit=True)
            self._conn_state = _ConnState.CONNECTED
        col = sql.Identifier(self.config.cursor_column)
        where = sql.SQL("WHERE {col} > %s").format(col=col)
        query = self._query.format(
            table=self._table,
            where=where if self.cursor is not None else sql.SQL(""),
            col=col,
            limit=sql.Literal(self.config.batch_size),
        )
        params = (self.cursor,) if self.cursor is not None else ()
        try:
            async with self._conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, params)
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            error = _translate(exc, f"query of {self.config.table}")
            if error.retriable:
                await self._drop()
            raise error from exc
        if rows and self.config.cursor_column not in rows[0]:
            raise ConfigError(f"{self.config.table} has no column {self.config.cursor_column!r}")
        return _whole_values(rows, self.config.cursor_column, self.config.batch_size)

    async def run(self, output: Output) -> None:
        while not output.stopping.is_set():
            try:
                rows = await self._fetch()
            except ConnectorError as exc:
                if not exc.retriable:
                    raise
                log.warning("%s; retrying", exc)
                output.metrics.retried(exc)
                rows = []
            if rows:
                output.metrics.read(len(rows))
                records = [*self._mapper.preamble()]
                for row in rows:
                    try:
                        records.append(self._mapper.map(row))
                    except (ValueError, TypeError) as exc:
                        await output.reject(msgspec.json.encode(row), exc)
                await output.send(records)
                self.cursor = _cursor_text(rows[-1][self.config.cursor_column])
                if self.config.state_file is not None:
                    await asyncio.to_thread(_write_state, self.config.state_file, self.cursor)
            if len(rows) < self.config.batch_size:
                try:
                    await output.sleep(self.config.poll_interval)
                except Stopped:
                    return

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._conn_state = _ConnState.DISCONNECTED
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def close(self) -> None:
        await self._drop()
        self._conn_state = _ConnState.CLOSED


def _whole_values(rows: list[Row], column: str, limit: int) -> list[Row]:
    """Drop trailing rows sharing the last cursor value when the batch is full: the next query
    (``> last``) would skip their peers beyond the limit. A batch of one value is kept whole."""
    if len(rows) < limit:
        return rows
    last = rows[-1][column]
    end = len(rows)
    while end > 0 and rows[end - 1][column] == last:
        end -= 1
    return rows[:end] if end > 0 else rows


def _cursor_text(value: Any) -> str:
    # Sent back as an untyped literal: PostgreSQL casts it to the column's type.
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _read_state(path: Path) -> str | None:
    try:
        data = msgspec.json.decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"state file {path} is not valid JSON: {exc}") from exc
    cursor = data.get("cursor") if isinstance(data, dict) else None
    return None if cursor is None else str(cursor)


def _write_state(path: Path, cursor: str) -> None:
    """Replace the state file atomically (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(msgspec.json.encode({"cursor": cursor}))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


# --- destination ---------------------------------------------------------------------------


class PostgresDestinationConfig(DestinationConfig):
    dsn: SecretStr = Field(description="libpq connection string or postgresql:// URI")
    table: str = Field(description="table to write: TABLE or SCHEMA.TABLE")
    key: list[str] = Field(
        default_factory=list,
        description="columns to upsert on (primary key of a created table) [default: append]",
    )
    create_table: bool = Field(default=True, description="create the table if it is missing")
    add_columns: bool = Field(default=True, description="add columns for new fields")
    batch_size: int = Field(default=1000, ge=1, le=10_000, description="records per write()")


_TYPES: dict[str, str] = {
    "bool": "boolean",
    "int": "bigint",
    "float": "double precision",
    "str": "text",
    "json": "jsonb",
    "datetime": "timestamptz",
}


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float | Decimal):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, datetime):
        return "datetime"
    return "json"


_decode_json = msgspec.json.Decoder().decode


def _plain_object(record: SinkRecord) -> Row | None:
    """A record that is a plain JSON object (no Quix headers, not a Quix envelope ``{"C", "K",
    "V", ...}``), decoded once; None for anything else. The hot path of plain JSON topics."""
    value = record.value
    if record.headers or not value.startswith(b"{"):
        return None
    try:
        obj = _decode_json(value)
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict) or ("K" in obj and "V" in obj):
        return None
    return obj


_values = operator.attrgetter("value")
_headers = operator.attrgetter("headers")


def _plain_batch(batch: Sequence[SinkRecord]) -> tuple[list[Row], set[str]] | None:
    """The batch's objects and the union of their field names when every record is a plain
    JSON object (what `_plain_object` accepts, and no ``streamId``), else None (then each
    record takes `rows_of`). Only C-level loops: ``map`` over msgspec's decoder and ``set``
    operations."""
    if not batch or any(map(_headers, batch)):
        return None
    try:
        objects: list[Any] = list(map(_decode_json, map(_values, batch)))
    except msgspec.DecodeError:
        return None
    if set(map(type, objects)) != {dict}:
        return None
    names: set[str] = set().union(*objects)
    if "streamId" in names or ("K" in names and "V" in names):
        return None  # a Quix envelope or a stream message may be among them: record by record
    return objects, names


def rows_of(record: SinkRecord) -> list[Row]:
    """The table rows of one record (see the module docstring); [] for non-data messages."""
    plain = _plain_object(record)
    if plain is not None and "streamId" not in plain:
        return [plain]
    payload = record.payload()
    if not isinstance(payload, dict):
        raise RecordRejected(f"a {type(payload).__name__} is not a row: need a JSON object", record)
    kind = payload.get("type") if "streamId" in payload else None
    if kind is None:
        return [payload]
    stream = payload["streamId"]
    if kind == "TimeseriesData":
        epoch = payload.get("epoch") or 0
        stamps = payload["timestamps"]
        columns: dict[str, list[Any]] = {}
        for group in ("numericValues", "stringValues", "tagValues"):
            columns.update(payload.get(group) or {})
        return [
            {
                "stream_id": stream,
                "timestamp": epoch + stamp,
                **{name: values[i] for name, values in columns.items()},
            }
            for i, stamp in enumerate(stamps)
        ]
    if kind == "EventData":
        return [_event_row(stream, payload)]
    if kind == "list":
        return [_event_row(stream, e) for e in payload.get("items", []) if isinstance(e, dict)]
    return []  # stream properties, definitions, stream end: not data


def _event_row(stream: str, event: dict[str, Any]) -> Row:
    return {
        "stream_id": stream,
        "timestamp": event.get("timestamp"),
        "event_id": event.get("id"),
        "value": event.get("value"),
        **(event.get("tags") or {}),
    }


class PostgresDestination(Destination[PostgresDestinationConfig]):
    """A streamport topic → a PostgreSQL table (COPY in batches, optional upsert on a key)."""

    name = "postgres-destination"
    summary = "write records into a PostgreSQL table (COPY, table from the schema, upsert)"
    config_class = PostgresDestinationConfig

    def __init__(self, config: PostgresDestinationConfig) -> None:
        super().__init__(config)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._conn_state = _ConnState.DISCONNECTED
        self._table = _table_ident(config.table)
        parts = config.table.split(".")
        self._schema_name = parts[0] if len(parts) == 2 else None
        self._table_name = parts[-1]
        self._columns: dict[str, str] | None = None  # name -> PostgreSQL type, once known
        self._staging_ok = False
        self._codec: _RowCodec | None = None  # for `_columns` (the same dict object)
        # What prepare() made of the batches read ahead (the runner holds up to READ_AHEAD).
        self._ready: collections.deque[_Prepared] = collections.deque(maxlen=4)

    async def setup(self) -> None:
        # The table's columns are known from the start, so the first batches read ahead can
        # be prepared on the typed path too.
        await self._refresh_columns(await self._connection())

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            # Autocommit: a batch that is one COPY statement is its own transaction (two round
            # trips, not four with BEGIN and COMMIT); every other batch opens one explicitly.
            self._conn = await _connect(self.config.dsn, autocommit=True)
            self._conn_state = _ConnState.CONNECTED
            self._columns = None
            self._staging_ok = False
        return self._conn

    async def _load_columns(self, conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
        query = (
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum"
        )
        async with conn.cursor() as cur:
            await cur.execute(query, (self._table.as_string(conn),))
            return {name: kind for name, kind in await cur.fetchall()}

    def _infer(self, rows: Iterable[Row]) -> dict[str, str]:
        kinds: dict[str, str] = {}
        for row in rows:
            for name, value in row.items():
                kind = _kind(value)
                if kind is None:
                    continue
                seen = kinds.get(name)
                if seen is None or (seen == "int" and kind == "float"):
                    kinds[name] = kind
                elif seen != kind and not (seen == "float" and kind == "int"):
                    kinds[name] = "json" if "json" in (seen, kind) else "str"
        return {name: _TYPES[kind] for name, kind in kinds.items()}

    async def _ensure_schema(
        self, conn: psycopg.AsyncConnection[Any], rows: list[Row], names: set[str] | None = None
    ) -> None:
        """Create the table / add columns for fields not seen yet (in the batch's transaction).
        `names`: the rows' field names when known already."""
        if self._columns is None:
            self._columns = await self._load_columns(conn)
        known = self._columns
        if known and (
            names <= known.keys()
            if names is not None
            else all(name in known for row in rows for name in row)
        ):
            return  # the common case: no new field, nothing to infer
        wanted = self._infer(rows)
        for name in self.config.key:
            wanted.setdefault(name, "text")
        new = {name: kind for name, kind in wanted.items() if name not in self._columns}
        if not new:
            return
        if not self._columns:
            if not self.config.create_table:
                raise ConnectorError(
                    f"table {self.config.table} does not exist (create_table is off)"
                )
            columns = [
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
                for name, kind in new.items()
            ]
            if self.config.key:
                columns.append(
                    sql.SQL("PRIMARY KEY ({})").format(
                        sql.SQL(", ").join(map(sql.Identifier, self.config.key))
                    )
                )
            statement = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                self._table, sql.SQL(", ").join(columns)
            )
            await conn.execute(statement)
        else:
            if not self.config.add_columns:
                missing = ", ".join(sorted(new))
                raise ConnectorError(f"table {self.config.table} has no column(s) {missing}")
            for name, kind in new.items():
                await conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        self._table, sql.Identifier(name), sql.SQL(kind)
                    )
                )
        # Committed with the batch; re-read if the transaction fails.
        self._columns = {**self._columns, **new}
        self._staging_ok = False

    def _row_codec(self) -> _RowCodec | None:
        columns = self._columns
        if not columns:
            return None
        if self._codec is None or self._codec.columns is not columns:
            self._codec = _RowCodec(columns, self.config.key)
        return self._codec

    def prepare(self, batch: list[SinkRecord]) -> None:
        # Runs while the previous batch's COPY is in PostgreSQL's hands (see Destination).
        codec = self._row_codec()
        if codec is not None:
            self._ready.append(_Prepared(batch, codec, codec.copy_text(batch)))

    def _prepared_text(self, batch: list[SinkRecord]) -> bytes | None:
        """The batch as one COPY text buffer of every column when it takes the typed path
        (prepared ahead, or now), else None."""
        codec = self._row_codec()
        if codec is None:
            return None
        for ready in self._ready:
            if ready.holds(batch):
                while self._ready.popleft() is not ready:
                    pass  # batches prepared before this one are not coming any more
                if ready.codec is codec:
                    return ready.text
                break
        return codec.copy_text(batch)

    async def _refresh_columns(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            self._columns = await self._load_columns(conn)
        except psycopg.Error as exc:
            error = _translate(exc, f"read of {self.config.table}'s columns")
            if error.retriable:
                await self._drop()
            raise error from exc

    async def write(self, batch: list[SinkRecord]) -> None:
        conn = await self._connection()
        if self._columns is None:
            await self._refresh_columns(conn)
        text = self._prepared_text(batch)
        if text is not None:
            # The common case: every record a plain JSON object of known fields, each value of
            # its column's kind; one buffer, no schema change.
            await self._write_rows(conn, batch, None, None, text)
            return
        plain = _plain_batch(batch)
        names: set[str] | None = None
        if plain is not None:
            # A plain JSON topic: each record is one row, decoded in one C-level pass.
            rows, names = plain
            per_record = [[row] for row in rows] if self.config.key else []
        else:
            per_record = convert(batch, rows_of)
            rows = [row for rows in per_record for row in rows]
        if not rows:
            return
        if self.config.key:
            rows = self._last_per_key(rows, batch, per_record)
        await self._write_rows(conn, batch, rows, names, None)

    async def _write_rows(
        self,
        conn: psycopg.AsyncConnection[Any],
        batch: list[SinkRecord],
        rows: list[Row] | None,
        names: set[str] | None,
        text: bytes | None,
    ) -> None:
        """One transaction: the schema for `rows` (none needed for `text`), then the COPY. A
        `text` appended without a key is a single COPY statement, atomic on its own (the
        connection is in autocommit mode): no BEGIN and COMMIT round trips."""
        try:
            if rows is None and not self.config.key:
                assert self._columns is not None
                await self._copy(conn, list(self._columns), rows, text)
                return
            async with conn.transaction():
                if rows is not None:
                    await self._ensure_schema(conn, rows, names)
                assert self._columns is not None
                await self._copy(conn, list(self._columns), rows, text)
        except psycopg.Error as exc:
            self._columns = None  # the schema changes may have been rolled back
            self._staging_ok = False
            error = _translate(exc, f"write to {self.config.table}")
            if error.retriable:
                await self._drop()
            elif len(batch) == 1:
                raise RecordRejected(str(error), batch[0]) from exc
            raise error from exc

    def _last_per_key(
        self, rows: list[Row], batch: Sequence[SinkRecord], per_record: list[list[Row]]
    ) -> list[Row]:
        """One row per key (ON CONFLICT cannot touch a row twice in a statement): the rows of a
        key merged in order, a later non-null value over an earlier one - what upserting them one
        by one would store, since a null or missing value keeps the stored one."""
        key = self.config.key
        out: dict[tuple[Any, ...], Row] = {}
        for record, record_rows in zip(batch, per_record, strict=True):
            for row in record_rows:
                try:
                    values = tuple(row[name] for name in key)
                except KeyError as exc:
                    raise RecordRejected(
                        f"record has no key field {exc.args[0]!r} (key: {key})", record
                    ) from exc
                if any(v is None for v in values):
                    raise RecordRejected(f"record has a null key field (key: {key})", record)
                k = _hashable(values)
                earlier = out.get(k)
                if earlier is None:
                    out[k] = row
                else:
                    out[k] = {**earlier, **{n: v for n, v in row.items() if v is not None}}
        return list(out.values())

    async def _copy(
        self,
        conn: psycopg.AsyncConnection[Any],
        columns: list[str],
        rows: list[Row] | None,
        text: bytes | None,
    ) -> None:
        """COPY `text` (every column, ready) or `rows` (formatted here, in chunks)."""
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        json_columns = {name for name, kind in (self._columns or {}).items() if kind == "jsonb"}
        target: sql.Composable = self._table
        if self.config.key:
            target = sql.Identifier(f"_streamport_stage_{self._table_name}")
            if not self._staging_ok:
                await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
                await conn.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    ).format(target, self._table)
                )
                self._staging_ok = True
        async with conn.cursor() as cur:
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)
            async with cur.copy(copy_sql) as copy:
                if text is not None:
                    await copy.write(text)
                rows = rows or []
                # In chunks: PostgreSQL parses one while the next is formatted.
                for start in range(0, len(rows), _COPY_CHUNK):
                    chunk = rows[start : start + _COPY_CHUNK]
                    text = _copy_text(chunk, columns, json_columns)
                    if text is not None:
                        await copy.write(text)
                        continue
                    for row in chunk:  # a value _copy_text does not cover: psycopg adapts it
                        await copy.write_row(
                            [
                                _json(row.get(name)) if name in json_columns else row.get(name)
                                for name in columns
                            ]
                        )
            if self.config.key:
                updates = [c for c in columns if c not in self.config.key]
                action = (
                    sql.SQL("DO UPDATE SET {}").format(
                        sql.SQL(", ").join(
                            sql.SQL("{0} = COALESCE(EXCLUDED.{0}, {1}.{0})").format(
                                sql.Identifier(c), self._table
                            )
                            for c in updates
                        )
                    )
                    if updates
                    else sql.SQL("DO NOTHING")
                )
                await cur.execute(
                    sql.SQL(
                        "INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "
                        "ON CONFLICT ({key}) {action}"
                    ).format(
                        table=self._table,
                        names=names,
                        stage=target,
                        key=sql.SQL(", ").join(map(sql.Identifier, self.config.key)),
                        action=action,
                    )
                )

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._conn_state = _ConnState.DISCONNECTED
        self._columns = None
        self._staging_ok = False
        self._ready.clear()
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def close(self) -> None:
        await self._drop()
        self._conn_state = _ConnState.CLOSED


_COPY_CHUNK = 1000  # rows formatted and sent at a time
_NoneType = type(None)
_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_escape = operator.methodcaller("translate", _ESCAPE)
_BOOL_TEXT: dict[Any, str] = {True: "t", False: "f", None: "\\N"}


def _json_text(value: Any) -> str:
    return "\\N" if value is None else msgspec.json.encode(value).decode().translate(_ESCAPE)


def _column_text(values: Sequence[Any], json_column: bool) -> Sequence[str] | None:
    """One column's values as COPY text fields, what ``copy.write_row`` would send (``\\N`` for
    null, ``t``/``f``, numbers, text escaped, JSON for a ``jsonb`` column); None when the
    column mixes kinds this does not cover (then the rows go one by one). C-level loops only,
    but for ``jsonb`` columns and text needing escapes."""
    kinds = set(map(type, values))
    kinds.discard(_NoneType)
    if json_column:
        return list(map(_json_text, values))
    if kinds <= {str}:
        nulls = None in values
        present = [v for v in values if v is not None] if nulls else values
        text = "".join(present)
        escape = "\\" in text or "\n" in text or "\r" in text or "\t" in text
        if nulls:
            return [_BOOL_TEXT[None] if v is None else _escape(v) if escape else v for v in values]
        return list(map(_escape, values)) if escape else values
    if kinds <= {int, float}:
        # msgspec writes a list of numbers at C speed; a number's text never holds a comma.
        # Non-finite floats (written as null) go one by one, as psycopg spells them.
        try:
            text = msgspec.json.encode(values)[1:-1].decode()
        except (msgspec.EncodeError, OverflowError):
            return None  # an integer beyond 64 bits
        null_count = values.count(None)
        if text.count("null") != null_count:
            return None
        fields = text.split(",")
        if null_count:
            fields = [_BOOL_TEXT[None] if f == "null" else f for f in fields]
        return fields
    if kinds <= {bool}:
        return list(map(_BOOL_TEXT.__getitem__, values))
    return None


def _copy_text(rows: list[Row], columns: list[str], json_columns: set[str]) -> bytes | None:
    """The rows as one COPY text-format buffer, built column by column with C-level loops
    (``map``, ``zip``, ``str.join``, msgspec); None when a column needs per-value adaptation."""
    if not columns:
        return None
    # Lists per column, no tuple per row: fewer objects for the garbage collector to track.
    table: list[list[Any]] = []
    for name in columns:
        try:
            table.append(list(map(operator.itemgetter(name), rows)))  # no row lacks it
        except KeyError:
            table.append([row.get(name) for row in rows])
    fields: list[Sequence[str]] = []
    for name, values in zip(columns, table, strict=True):
        column = _column_text(values, name in json_columns)
        if column is None:
            return None
        fields.append(column)
    lines = map("\t".join, zip(*fields, strict=True))
    return ("\n".join(lines) + "\n").encode()


def _json(value: Any) -> Any:
    return None if value is None else Jsonb(value)


def _hashable(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(msgspec.json.encode(v) if isinstance(v, dict | list) else v for v in values)


# --- the typed path: JSON objects -> COPY text without a Python call per row ----------------

_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# A column's type -> the JSON values the typed path takes for it (any other value, or a column
# of another type holding anything but null, sends the batch down the general path). Each
# value is written as msgspec writes it, which is what `_column_text` writes for it too.
_FIELD_TYPES: dict[str, Any] = {
    "bigint": _INT64,
    "integer": _INT64,
    "smallint": _INT64,
    "double precision": float,  # JSON integers too, as floats
    "real": float,
    "text": str,
    "boolean": bool,
}


def _field_type(column_type: str) -> Any:
    kind = _FIELD_TYPES.get(column_type)
    if kind is None and column_type.startswith(("character varying", "character(")):
        kind = str
    return None if kind is None else kind | None


_encode_json = msgspec.json.Encoder().encode
_astuple = msgspec.structs.astuple
# JSON arrays of arrays -> COPY text: "," between fields -> tab, "]" ending a row -> newline;
# "[" and the quotes around strings are deleted.
_JSON_TO_COPY = bytes.maketrans(b",]", b"\t\n")


class _RowCodec:
    """Decodes plain JSON objects straight into rows of the table's columns (a msgspec struct
    made for them: one field per column, typed by the column, unknown fields refused) and
    writes those rows as one COPY text buffer.

    Only C-level loops: ``map`` over msgspec's decoder, ``astuple``, one JSON encoding of the
    whole batch as arrays, and bytes operations that turn it into COPY text
    (`_rows_copy_text`). A batch this cannot take whole (a record with headers, not a JSON
    object, with a new field, a value of another kind, a null key) returns None and goes the
    general way (`_plain_batch` / `rows_of`), which handles all of that as before."""

    def __init__(self, columns: dict[str, str], key: Sequence[str]) -> None:
        self.columns = columns
        names = list(columns)
        fields = [(f"f{i}", _field_type(kind), None) for i, kind in enumerate(columns.values())]
        row = msgspec.defstruct(
            "Row",
            fields,
            rename={f"f{i}": name for i, name in enumerate(names)},
            forbid_unknown_fields=True,
            gc=False,
        )
        self._decode: Callable[[bytes], Any] = msgspec.json.Decoder(row).decode
        # Records that could be stream messages or Quix envelopes (as `_plain_batch`), and keys
        # that are not columns, never take this path.
        self.usable = (
            bool(names)
            and "streamId" not in columns
            and not ("K" in columns and "V" in columns)
            and all(name in columns for name in key)
        )
        self._key: Callable[[Any], Any] | None = (
            operator.attrgetter(*(f"f{names.index(name)}" for name in key))
            if key and self.usable
            else None
        )
        self._compound_key = len(key) > 1
        texts = [f"f{i}" for i, (_, kind, _) in enumerate(fields) if kind == str | None]
        # All text values of a row, for the check that none holds a comma or a bracket.
        self._texts: Callable[[Any], Any] | None = (
            operator.attrgetter(*texts) if len(texts) > 1 else None
        )
        self._text: Callable[[Any], Any] | None = (
            operator.attrgetter(texts[0]) if len(texts) == 1 else None
        )

    def copy_text(self, batch: Sequence[SinkRecord]) -> bytes | None:
        if not self.usable or not batch or any(map(_headers, batch)):
            return None
        try:
            rows: list[Any] = list(map(self._decode, map(_values, batch)))
        except msgspec.DecodeError:  # ValidationError included
            return None
        if self._key is not None:
            keys = list(map(self._key, rows))
            if None in (itertools.chain.from_iterable(keys) if self._compound_key else keys):
                return None  # the general path dead-letters the record
            if len(set(keys)) != len(keys):
                return None  # a key twice: the general path merges its rows (`_last_per_key`)
        # Commas and brackets are the JSON structure `_rows_copy_text` rewrites: a text holding
        # one goes the general way.
        if self._text is not None:
            texts = "".join(filter(None, map(self._text, rows)))
        elif self._texts is not None:
            texts = "".join(filter(None, itertools.chain.from_iterable(map(self._texts, rows))))
        else:
            texts = ""
        if "," in texts or "[" in texts or "]" in texts:
            return None
        return _rows_copy_text(rows)


def _rows_copy_text(rows: Sequence[Any]) -> bytes | None:
    r"""Rows (msgspec structs of int, float, str, bool or None fields; no string holding a
    comma or a bracket, see `_RowCodec.copy_text`) as COPY text, from one JSON encoding of them
    as arrays: ``[[1,0.5,"a"],[2,null,"b"]]`` becomes ``1<TAB>0.5<TAB>a<LF>2<TAB>\N<TAB>b<LF>``.
    None when a string needs more than losing its quotes: a quote or a ``\u`` escape in it
    (JSON's other escapes, ``\\``, ``\n``, ``\r``, ``\t``, ``\b``, ``\f``, mean the same in
    COPY text)."""
    # The garbage collector waits while the rows are tuples: thousands of tracked tuples alive
    # for a millisecond would otherwise set off collections that promote them to older
    # generations and, every few batches, a full collection of the whole heap (tens of ms).
    collecting = gc.isenabled()
    gc.disable()
    try:
        data = _encode_json(list(map(_astuple, rows)))
    finally:
        if collecting:
            gc.enable()
    if b"\\" in data and (b'\\"' in data or b"\\u" in data):
        return None
    if b"null" in data:  # null fields, after a comma or opening a row (strings are quoted)
        data = data.replace(b",null", b",\\N").replace(b"[null", b"[\\N")
    # "[[1,2],[3,4]]" -> "1\t2\n\t3\t4\n\n" -> "1\t2\n3\t4\n"
    return data.translate(_JSON_TO_COPY, b'["').replace(b"\n\t", b"\n")[:-1]


@dataclass(frozen=True, slots=True)
class _Prepared:
    batch: list[SinkRecord]
    codec: _RowCodec
    text: bytes | None

    def holds(self, batch: list[SinkRecord]) -> bool:
        """`batch` is the prepared batch: the same records (objects), in the same order."""
        return len(batch) == len(self.batch) and all(map(operator.is_, batch, self.batch))
