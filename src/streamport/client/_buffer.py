"""The producer's timeseries buffer: rows accumulate and go out as one packet.

A packet is released when it has `packet_size` rows, spans `time_span_in_nanoseconds`, or has
waited `buffer_timeout` ms since its first row, and always on ``flush()`` and ``close()``. With no
condition set, each ``publish()`` is released at once. At `MAX_ROWS` rows a packet is released
whatever the settings say, so the buffer stays bounded.

Example::

    buffer = stream.timeseries.buffer
    buffer.packet_size = 100
    buffer.add_timestamp_nanoseconds(1).add_value("speed", 1.5).add_tag("car", "A").publish()

Speed (bench/sdk): a row costs the caller one builder, one dict store per value and one list
extend at ``publish()``; nothing is checked or converted per value. A published row waits as
three items -- timestamp, values dict, tags -- of one flat list that is only ever extended (one
``+=`` of a tuple is atomic under the GIL, so no lock per row) and cut from the front under the
stream's lock at release. The builder itself is not kept: it dies with the row, so a busy
producer leaves the garbage collector nothing to track (holding 1,000 builders per packet made
it run a young collection every 700 rows and promote them). Release cuts the flat list into
timestamps, values and tags by slicing, builds the columns in C (``map`` of item getters) and
checks each numeric column once with ``msgspec.convert`` (ints and floats only, no booleans);
only rows with differing parameters, mixed or unusual types, or per-row tags take the per-cell
path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import msgspec

from streamport import model
from streamport.client._data import TimeseriesData, TimeseriesDataTimestamp, to_raw
from streamport.client._time import epoch_ns, to_ns

if TYPE_CHECKING:
    import pandas as pd

    from streamport.client._producer import StreamProducer

MAX_ROWS = 100_000
ROW = 3  # items per pending row: timestamp, values, tags


class TimeseriesDataBuilder:
    """One row being built; ``publish()`` hands it to the buffer."""

    __slots__ = ("_buffer", "_tags", "_timestamp", "_values")

    _buffer: TimeseriesBufferProducer
    _timestamp: int
    _values: dict[str, Any]
    _tags: dict[str, str] | None

    def __init__(self, buffer: TimeseriesBufferProducer, timestamp: int) -> None:
        self._buffer = buffer
        self._timestamp = timestamp
        self._values = {}
        self._tags = None

    def add_value(
        self, parameter_id: str, value: float | int | str | bytes | bytearray | None
    ) -> TimeseriesDataBuilder:
        # Booleans, bytearrays and other number types are converted at release, per column.
        self._values[parameter_id] = value
        return self

    def add_tag(self, tag_id: str, value: str) -> TimeseriesDataBuilder:
        if self._tags is None:
            self._tags = {}
            self._buffer._tagged = True
        self._tags[tag_id] = value
        return self

    def add_tags(self, tags: dict[str, str]) -> TimeseriesDataBuilder:
        if self._tags is None:
            self._tags = {}
            self._buffer._tagged = True
        self._tags.update(tags)
        return self

    def publish(self) -> None:
        buffer = self._buffer
        pending = buffer._pending
        pending += (self._timestamp, self._values, self._tags)  # atomic (module docstring)
        if len(pending) >= buffer._limit:
            buffer._check()


# Skips the __init__ frame on the hot path (add_timestamp_nanoseconds sets the same four fields).
_new_builder: Callable[[type[TimeseriesDataBuilder]], TimeseriesDataBuilder] = object.__new__


class TimeseriesBufferProducer:
    def __init__(self, stream: StreamProducer) -> None:
        self._stream = stream
        # Published rows waiting for release, `ROW` items each (timestamp, values, tags):
        # extended without a lock, cut under the stream's lock.
        self._pending: list[Any] = []
        self._generation = 0  # releases so far (a timeout only releases its own packet)
        self._armed = -1  # the generation whose timeout is armed
        self._packet_size: int | None = None
        self._span: int | None = None
        self._timeout: int | None = None  # ms
        self._limit = ROW  # publish() checks the conditions from this many pending items on
        self.default_tags: dict[str, str] = {}
        self._tagged = False  # a row had tags once: releases look for them (never reset)
        self._epoch = 0

    # -- settings (each change recomputes `_limit`) ----------------------------------------

    @property
    def packet_size(self) -> int | None:
        return self._packet_size

    @packet_size.setter
    def packet_size(self, value: int | None) -> None:
        self._packet_size = value
        self._set_limit()

    @property
    def time_span_in_nanoseconds(self) -> int | None:
        return self._span

    @time_span_in_nanoseconds.setter
    def time_span_in_nanoseconds(self, value: int | None) -> None:
        self._span = value
        self._set_limit()

    @property
    def time_span_in_milliseconds(self) -> int | None:
        span = self._span
        return None if span is None else span // 1_000_000

    @time_span_in_milliseconds.setter
    def time_span_in_milliseconds(self, value: int | None) -> None:
        self.time_span_in_nanoseconds = None if value is None else value * 1_000_000

    @property
    def buffer_timeout(self) -> int | None:
        """Milliseconds a packet may wait after its first row."""
        return self._timeout

    @buffer_timeout.setter
    def buffer_timeout(self, value: int | None) -> None:
        self._timeout = value
        self._set_limit()

    def _set_limit(self) -> None:
        if self._span is None and not self._timeout and self._packet_size is not None:
            self._limit = ROW * max(1, min(self._packet_size, MAX_ROWS))
        else:
            # No condition (each publish goes out), or a time condition: check every row.
            self._limit = ROW

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: datetime | int) -> None:
        self._epoch = epoch_ns(value)

    # -- rows ------------------------------------------------------------------------------

    def add_timestamp(self, time: datetime | timedelta) -> TimeseriesDataBuilder:
        return TimeseriesDataBuilder(self, to_ns(time, self._epoch))

    def add_timestamp_milliseconds(self, milliseconds: int) -> TimeseriesDataBuilder:
        return TimeseriesDataBuilder(self, self._epoch + milliseconds * 1_000_000)

    def add_timestamp_nanoseconds(self, nanoseconds: int) -> TimeseriesDataBuilder:
        builder = _new_builder(TimeseriesDataBuilder)
        builder._buffer = self
        builder._timestamp = self._epoch + nanoseconds
        builder._values = {}
        builder._tags = None
        return builder

    def publish(
        self,
        data: TimeseriesData | model.TimeseriesData | TimeseriesDataTimestamp | pd.DataFrame,
    ) -> None:
        """Add every row of `data` to the buffer, as if each were published on its own.

        Without a condition `data` goes out at once; with `packet_size` alone whole packets of
        it go out as column slices, without being taken apart into rows (only the rows that
        complete a waiting packet, and the ones left over for the next, join the buffer row by
        row). With a time condition every row joins the buffer and the conditions are checked
        after each, as ``publish()`` of a built row does.
        """
        raw = to_raw(data).absolute()
        count = len(raw.timestamps)
        if not count:
            return
        if raw.tag_values:
            self._tagged = True  # rows joining the buffer may carry tags
        with self._stream._lock:
            if self._span is not None or self._timeout:
                for row in _rows(raw, 0, count):
                    self._pending += row
                    self._check()
                return
            if self._packet_size is None:  # each publish goes out at once (in bounded packets)
                self._release()
                for start in range(0, count, MAX_ROWS):
                    self._send_columns(_slice(raw, start, min(count, start + MAX_ROWS)))
                return
            size = max(1, min(self._packet_size, MAX_ROWS))
            start = 0
            if self._pending:  # complete the waiting packet first
                start = min(count, max(0, size - len(self._pending) // ROW))
                self._add_rows(raw, 0, start)
                if len(self._pending) // ROW >= size:
                    self._release()
            while count - start >= size:
                self._send_columns(_slice(raw, start, start + size))
                start += size
            self._add_rows(raw, start, count)

    def _add_rows(self, raw: model.TimeseriesData, start: int, stop: int) -> None:
        """Rows `start` to `stop` of `raw` join the pending rows (a None cell is no value)."""
        for row in _rows(raw, start, stop):
            self._pending += row

    def _send_columns(self, raw: model.TimeseriesData) -> None:
        """Send `raw` as one packet, with the default tags filling its empty tag cells."""
        if self.default_tags:
            tags = dict(raw.tag_values)
            fill_default_tags(tags, self.default_tags, len(raw.timestamps))
            raw = msgspec.structs.replace(raw, tag_values=tags)
        self._stream._send(raw)

    # -- release ---------------------------------------------------------------------------

    def _check(self) -> None:
        """Release the pending rows if a condition says so (called by publish)."""
        with self._stream._lock:
            pending = self._pending
            count = len(pending) // ROW
            if not count:
                return  # another thread released them meanwhile
            size, span, timeout = self._packet_size, self._span, self._timeout
            if timeout and self._armed != self._generation:
                self._armed = self._generation
                self._arm_timeout()
            if (
                (size is None and span is None and not timeout)
                or (size is not None and count >= size)
                or (span is not None and pending[-ROW] - pending[0] >= span)
                or count >= MAX_ROWS
            ):
                self._release()

    def _arm_timeout(self) -> None:
        generation = self._generation
        delay = (self._timeout or 0) / 1000
        loop = self._stream.topic._core.loop

        def expire() -> None:
            with self._stream._lock:
                if self._generation == generation and self._pending:
                    self._release()

        loop.call_soon(lambda: loop.loop.call_later(delay, expire))

    def _release(self) -> None:
        """Send the pending rows as one packet (the caller holds the stream's lock)."""
        pending = self._pending
        end = len(pending)
        if not end:
            return
        # Rows published meanwhile by other threads land behind `end`: cut only the front
        # (every extend is atomic, so `end` is a whole number of rows).
        stamps = pending[0:end:ROW]
        values = pending[1:end:ROW]
        tags = pending[2:end:ROW] if self._tagged else None
        del pending[:end]
        self._generation += 1
        self._stream._send(rows_to_columns(stamps, values, tags, self.default_tags))

    def flush(self) -> None:
        with self._stream._lock:
            self._release()


# -- rows -> columns --------------------------------------------------------------------------

_NUMERIC_COLUMN = list[float]
_STRING = frozenset({str})
_BINARY = frozenset({bytes})


def builders_to_raw(
    rows: list[TimeseriesDataBuilder],
    default_tags: dict[str, str] | None = None,
    *,
    tagged: bool = True,
) -> model.TimeseriesData:
    """Built rows -> one packet, as the buffer releases them (`tagged` False: no row has tags)."""
    stamps = [row._timestamp for row in rows]
    values = [row._values for row in rows]
    tags = [row._tags for row in rows] if tagged else None
    return rows_to_columns(stamps, values, tags, default_tags)


def rows_to_columns(
    stamps: list[int],
    values: list[dict[str, Any]],
    row_tags: list[dict[str, str] | None] | None,
    default_tags: dict[str, str] | None = None,
) -> model.TimeseriesData:
    """Released rows -> one column-oriented packet; a missing cell is None.

    Same result as ``_data.rows_to_raw`` on the same rows (a test holds them equal). With
    `row_tags` None no row has tags.
    """
    count = len(stamps)
    numeric: dict[str, list[float | None]] = {}
    strings: dict[str, list[str | None]] = {}
    binary: dict[str, list[bytes | None]] = {}
    tags: dict[str, list[str | None]] = {}
    columns = _dense_columns(values)
    if columns is None:
        _add_sparse(values, count, numeric, strings, binary)
    else:
        for pid, column in columns:
            try:
                # Ints and floats only (no bool, None or str): checked in C, ~5x cheaper than
                # collecting the cell types. The column itself is kept (ints stay ints).
                msgspec.convert(column, _NUMERIC_COLUMN)
            except msgspec.ValidationError:
                pass
            else:
                numeric[pid] = column
                continue
            kinds = set(map(type, column))
            if kinds <= _STRING:
                strings[pid] = column
            elif kinds <= _BINARY:
                binary[pid] = column
            else:  # Nones, booleans, bytearrays, other numbers, or mixed kinds
                _add_cells(pid, enumerate(column), count, numeric, strings, binary)
    if row_tags is not None and row_tags.count(None) != count:
        for index, one in enumerate(row_tags):
            if one:
                for tag, tag_value in one.items():
                    tag_column = tags.get(tag)
                    if tag_column is None:
                        tag_column = tags[tag] = [None] * count
                    tag_column[index] = tag_value
    if default_tags:
        fill_default_tags(tags, default_tags, count)
    return model.TimeseriesData(
        timestamps=stamps,
        numeric_values=numeric,
        string_values=strings,
        binary_values=binary,
        tag_values=tags,
    )


def fill_default_tags(
    tags: dict[str, list[str | None]], default_tags: dict[str, str], count: int
) -> None:
    """Each default tag fills the cells of its column that have no value (all, if none has)."""
    for tag, default in default_tags.items():
        tag_column = tags.get(tag)
        if tag_column is None:
            tags[tag] = [default] * count
        else:
            tags[tag] = [default if v is None else v for v in tag_column]


def _rows(
    raw: model.TimeseriesData, start: int, stop: int
) -> Iterator[tuple[int, dict[str, Any], dict[str, str] | None]]:
    """Rows `start` to `stop` of `raw` as pending rows (timestamp, values, tags or None); a None
    cell is no value."""
    cells = [
        (pid, column)
        for group in (raw.numeric_values, raw.string_values, raw.binary_values)
        for pid, column in group.items()
    ]
    tag_columns: list[tuple[str, list[Any]]] = list(raw.tag_values.items())
    for index in range(start, stop):
        values = {pid: column[index] for pid, column in cells if column[index] is not None}
        tags = {tag: column[index] for tag, column in tag_columns if column[index] is not None}
        yield raw.timestamps[index], values, tags or None


def _slice(raw: model.TimeseriesData, start: int, stop: int) -> model.TimeseriesData:
    """Rows `start` to `stop` of `raw`; a column without a value there is left out (as a packet
    of the same rows built one by one would have no such column)."""

    def cut(group: dict[str, list[Any]]) -> dict[str, list[Any]]:
        columns = {}
        for pid, column in group.items():
            part = column[start:stop]
            if part[0] is not None or part.count(None) != len(part):
                columns[pid] = part
        return columns

    return model.TimeseriesData(
        timestamps=raw.timestamps[start:stop],
        numeric_values=cut(raw.numeric_values),
        string_values=cut(raw.string_values),
        binary_values=cut(raw.binary_values),
        tag_values=cut(raw.tag_values),
    )


def _dense_columns(values: list[dict[str, Any]]) -> list[tuple[str, list[Any]]] | None:
    """``[(pid, cells)]`` when every row has the same parameters (else None), built in C."""
    first = list(values[0])
    if not first:
        return None if any(values) else []
    try:
        # One pass per parameter (no tuple per row, unlike zip(*rows)).
        columns = [(pid, list(map(itemgetter(pid), values))) for pid in first]
    except KeyError:
        return None
    # Every row has each of the first row's keys; equal total size means no row has more.
    return columns if sum(map(len, values)) == len(first) * len(values) else None


def _add_sparse(
    values: list[dict[str, Any]],
    count: int,
    numeric: dict[str, list[float | None]],
    strings: dict[str, list[str | None]],
    binary: dict[str, list[bytes | None]],
) -> None:
    cells: dict[str, list[tuple[int, Any]]] = {}
    for index, row in enumerate(values):
        for pid, value in row.items():
            column = cells.get(pid)
            if column is None:
                column = cells[pid] = []
            column.append((index, value))
    for pid, pairs in cells.items():
        _add_cells(pid, pairs, count, numeric, strings, binary)


def _add_cells(
    pid: str,
    cells: Iterable[tuple[int, Any]],
    count: int,
    numeric: dict[str, list[float | None]],
    strings: dict[str, list[str | None]],
    binary: dict[str, list[bytes | None]],
) -> None:
    """The per-cell path: each value goes to the group of its type (None leaves the cell)."""
    group: dict[str, list[Any]]
    for index, value in cells:
        if type(value) is float or type(value) is int:
            group = numeric
        elif value is None:
            continue
        elif isinstance(value, str):
            group = strings
        elif isinstance(value, bytes | bytearray):
            group, value = binary, bytes(value)
        else:  # booleans and other number types (numpy scalars, Decimal) as floats
            group, value = numeric, float(value)
        column = group.get(pid)
        if column is None:
            column = group[pid] = [None] * count
        column[index] = value
