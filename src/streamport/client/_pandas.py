"""pandas conversion with Quix's conventions.

A ``timestamp`` column of int64 nanoseconds (on input also ``time`` or ``datetime``, datetime64
columns, else the first integer column); tag columns are prefixed ``TAG__`` (``TAG__CarId``);
every other column is a parameter: numbers are numeric values (float64), ``bytes`` are binary
values, anything else is a string value. Missing values (NaN, None) are "no value".

Round trip DataFrame -> topic -> DataFrame keeps numbers (as float64), strings and tags.
"""

from __future__ import annotations

import math
from typing import Any

import numpy
import pandas as pd

from streamport import model
from streamport.errors import ValidationError

TAG_PREFIX = "TAG__"
TIME_COLUMNS = ("timestamp", "time", "datetime")
_FLOAT64 = numpy.dtype("float64")
_INT64 = numpy.dtype("int64")  # never holds a gap (NaN or NA)


def timeseries_to_dataframe(data: model.TimeseriesData) -> pd.DataFrame:
    """Columns ``timestamp``, the parameters (numeric, string, binary), then ``TAG__`` tags."""
    raw = data.absolute()
    columns: dict[str, Any] = {"timestamp": pd.Series(raw.timestamps, dtype="int64")}
    for pid, numbers in raw.numeric_values.items():
        columns[pid] = pd.Series(numpy.array(numbers, dtype="float64"))  # None -> NaN, in C
    for pid, strings in raw.string_values.items():
        columns[pid] = pd.Series(strings)  # pandas' own string dtype (str in pandas 3)
    for pid, blobs in raw.binary_values.items():
        columns[pid] = pd.Series(blobs, dtype="object")
    for tag, values in raw.tag_values.items():
        columns[TAG_PREFIX + tag] = pd.Series(values)
    return pd.DataFrame(columns)


def _time_column(df: pd.DataFrame) -> Any:
    for name in TIME_COLUMNS:
        if name in df.columns:
            return name
    for label, column in df.items():
        if column.dtype.kind in "iuM":  # integers (numpy or nullable) or datetime64
            return label
    raise ValidationError(
        "the DataFrame has no 'timestamp' column (int nanoseconds or datetime64)",
        field="timestamp",
    )


def _timestamps(column: pd.Series[Any]) -> list[int]:
    kind = column.dtype.kind
    if kind not in "iufM" or (column.dtype != _INT64 and column.isna().any()):
        raise ValidationError(
            "the timestamp column must hold int nanoseconds or datetimes, without gaps",
            field="timestamp",
        )
    if kind == "M":
        if getattr(column.dt, "tz", None) is not None:
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return column.astype("datetime64[ns]").astype("int64").tolist()
    if kind == "i":
        return column.tolist()  # Python ints already
    return [int(v) for v in column.tolist()]  # floats; uint64 beyond int64 stays exact


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def dataframe_to_timeseries(df: pd.DataFrame, epoch: int = 0) -> model.TimeseriesData:
    """A DataFrame in Quix's conventions (see the module docstring) as timeseries data."""
    if not df.columns.is_unique:
        twice = df.columns[df.columns.duplicated()].unique().tolist()
        raise ValidationError(
            f"the DataFrame has more than one column {twice[0]!r}", field=str(twice[0])
        )
    time_name = _time_column(df)
    stamps = _timestamps(df[time_name])
    out = model.TimeseriesData(epoch=0, timestamps=[t + epoch for t in stamps] if epoch else stamps)
    numeric: dict[str, list[float | None]] = {}
    strings: dict[str, list[str | None]] = {}
    binary: dict[str, list[bytes | None]] = {}
    tags: dict[str, list[str | None]] = {}
    for name, column in df.items():  # by position: a label lookup per column costs ~10 us more
        if name == time_name:
            continue
        key = str(name)
        if key.startswith(TAG_PREFIX):
            tags[key[len(TAG_PREFIX) :]] = [
                None if _missing(v) else str(v) for v in column.tolist()
            ]
        elif column.dtype.kind in "biuf":  # booleans and numbers (numpy or nullable)
            if column.dtype == _FLOAT64:
                floats = column.to_numpy()  # the column's own array, not a copy
            else:
                floats = column.to_numpy(dtype="float64", na_value=math.nan)
            values = floats.tolist()
            if numpy.isnan(floats).any():
                values = [None if v != v else v for v in values]  # NaN is "no value"
            numeric[key] = values
        else:
            values = column.tolist()
            present = [v for v in values if not _missing(v)]
            if present and all(isinstance(v, bytes | bytearray) for v in present):
                binary[key] = [v if isinstance(v, bytes) else _blob(v) for v in values]
            else:
                strings[key] = [None if _missing(v) else str(v) for v in values]
    out.numeric_values, out.string_values = numeric, strings
    out.binary_values, out.tag_values = binary, tags
    out.validate()
    return out


def events_from_dataframe(
    df: pd.DataFrame, *, id: str = "id", timestamp: str = "timestamp", value: str = "value"
) -> list[model.EventData]:
    """One event per row: columns `id`, `timestamp` (ns or datetime), `value`; ``TAG__`` tags.

    Column by column (one ``tolist()`` each), not cell by cell."""
    for name in (id, timestamp, value):
        if name not in df.columns:
            raise ValidationError(f"the DataFrame has no {name!r} column", field=name)
    stamps = _timestamps(df[timestamp])
    ids = [str(v) for v in df[id].tolist()]
    values = ["" if _missing(v) else str(v) for v in df[value].tolist()]
    tag_columns = [
        (str(label)[len(TAG_PREFIX) :], df[label].tolist())
        for label in df.columns
        if str(label).startswith(TAG_PREFIX)
    ]
    return [
        model.EventData(
            id=event_id,
            timestamp=stamp,
            value=event_value,
            tags={tag: str(cells[row]) for tag, cells in tag_columns if not _missing(cells[row])},
        )
        for row, (event_id, stamp, event_value) in enumerate(zip(ids, stamps, values, strict=True))
    ]


def _blob(value: object) -> bytes | None:
    return bytes(value) if isinstance(value, bytearray) else None
