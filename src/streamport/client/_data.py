"""The Quix client's data objects: row-oriented `TimeseriesData` and `EventData`.

They convert to and from the column-oriented wire models of ``streamport.model``
(``to_raw()`` / ``from_raw()``) and to and from pandas (``to_dataframe()`` /
``from_dataframe()``).

Example::

    data = TimeseriesData()
    data.add_timestamp_nanoseconds(1).add_value("speed", 10.5).add_tag("car", "A")
    raw = data.to_raw()   # streamport.model.TimeseriesData
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from streamport import model
from streamport.client._time import ns_to_datetime, to_ns

if TYPE_CHECKING:
    import pandas as pd

Value = float | int | str | bytes | bytearray
Row = tuple[int, dict[str, Any], dict[str, str]]  # (ns, values, tags)


class ParameterValueType(enum.Enum):
    Empty = 0
    Numeric = 1
    String = 2
    Binary = 3


class ParameterValue:
    __slots__ = ("value",)

    def __init__(self, value: Value | None) -> None:
        self.value = value

    @property
    def type(self) -> ParameterValueType:
        if self.value is None:
            return ParameterValueType.Empty
        if isinstance(self.value, str):
            return ParameterValueType.String
        if isinstance(self.value, bytes | bytearray):
            return ParameterValueType.Binary
        return ParameterValueType.Numeric

    @property
    def numeric_value(self) -> float | None:
        v = self.value
        return float(v) if isinstance(v, int | float) else None

    @property
    def string_value(self) -> str | None:
        return self.value if isinstance(self.value, str) else None

    @property
    def binary_value(self) -> bytes | None:
        return bytes(self.value) if isinstance(self.value, bytes | bytearray) else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParameterValue) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"ParameterValue({self.value!r})"


class TimeseriesDataTimestamp:
    """One row: a timestamp (ns since the Unix epoch), parameter values and tags."""

    __slots__ = ("parameters", "tags", "timestamp_nanoseconds")

    def __init__(self, timestamp_nanoseconds: int) -> None:
        self.timestamp_nanoseconds = timestamp_nanoseconds
        self.parameters: dict[str, ParameterValue] = {}
        self.tags: dict[str, str] = {}

    def add_value(self, parameter_id: str, value: Value | None) -> TimeseriesDataTimestamp:
        if isinstance(value, bool):
            value = float(value)
        self.parameters[parameter_id] = ParameterValue(value)
        return self

    def remove_value(self, parameter_id: str) -> TimeseriesDataTimestamp:
        self.parameters.pop(parameter_id, None)
        return self

    def add_tag(self, tag_id: str, value: str) -> TimeseriesDataTimestamp:
        self.tags[tag_id] = value
        return self

    def add_tags(self, tags: dict[str, str]) -> TimeseriesDataTimestamp:
        self.tags.update(tags)
        return self

    def remove_tag(self, tag_id: str) -> TimeseriesDataTimestamp:
        self.tags.pop(tag_id, None)
        return self

    @property
    def timestamp_milliseconds(self) -> int:
        return self.timestamp_nanoseconds // 1_000_000

    @property
    def timestamp(self) -> datetime:
        return ns_to_datetime(self.timestamp_nanoseconds)

    @property
    def timestamp_as_time_span(self) -> timedelta:
        return timedelta(microseconds=self.timestamp_nanoseconds // 1000)

    def __repr__(self) -> str:
        return (
            f"TimeseriesDataTimestamp({self.timestamp_nanoseconds}, {self.parameters}, {self.tags})"
        )


class TimeseriesData:
    """Rows of timeseries data (Quix's ``TimeseriesData``)."""

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch
        self.timestamps: list[TimeseriesDataTimestamp] = []

    def add_timestamp(self, time: datetime | timedelta) -> TimeseriesDataTimestamp:
        return self._add(to_ns(time, self.epoch))

    def add_timestamp_milliseconds(self, milliseconds: int) -> TimeseriesDataTimestamp:
        return self._add(self.epoch + milliseconds * 1_000_000)

    def add_timestamp_nanoseconds(self, nanoseconds: int) -> TimeseriesDataTimestamp:
        return self._add(self.epoch + nanoseconds)

    def _add(self, ns: int) -> TimeseriesDataTimestamp:
        row = TimeseriesDataTimestamp(ns)
        self.timestamps.append(row)
        return row

    def clone(self, parameter_filter: list[str] | None = None) -> TimeseriesData:
        copy = TimeseriesData(self.epoch)
        for row in self.timestamps:
            new = copy._add(row.timestamp_nanoseconds)
            new.tags = dict(row.tags)
            new.parameters = {
                k: v
                for k, v in row.parameters.items()
                if parameter_filter is None or k in parameter_filter
            }
        return copy

    def to_raw(self) -> model.TimeseriesData:
        """The column form that travels on topics."""
        return rows_to_raw(self.timestamps)

    @classmethod
    def from_raw(cls, raw: model.TimeseriesData) -> TimeseriesData:
        data = cls()
        raw = raw.absolute()
        data.timestamps = [TimeseriesDataTimestamp(t) for t in raw.timestamps]
        for group in (raw.numeric_values, raw.string_values, raw.binary_values):
            for pid, values in group.items():
                for row, value in zip(data.timestamps, values, strict=True):
                    if value is not None:
                        row.parameters[pid] = ParameterValue(value)
        for tag, tag_values in raw.tag_values.items():
            for row, tag_value in zip(data.timestamps, tag_values, strict=True):
                if tag_value is not None:
                    row.tags[tag] = tag_value
        return data

    def to_dataframe(self) -> pd.DataFrame:
        from streamport.client._pandas import timeseries_to_dataframe

        return timeseries_to_dataframe(self.to_raw())

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, epoch: int = 0) -> TimeseriesData:
        from streamport.client._pandas import dataframe_to_timeseries

        return cls.from_raw(dataframe_to_timeseries(df, epoch))

    from_panda_dataframe = from_dataframe

    def __enter__(self) -> TimeseriesData:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.timestamps = []


def rows_to_raw(
    rows: Sequence[TimeseriesDataTimestamp | Row],
) -> model.TimeseriesData:
    """Rows (objects, or ``(ns, values, tags)`` tuples) -> columns; missing cells are None."""
    count = len(rows)
    stamps: list[int] = []
    numeric: dict[str, list[float | None]] = {}
    strings: dict[str, list[str | None]] = {}
    binary: dict[str, list[bytes | None]] = {}
    tags: dict[str, list[str | None]] = {}
    for index, row in enumerate(rows):
        if isinstance(row, TimeseriesDataTimestamp):
            ns = row.timestamp_nanoseconds
            values: dict[str, Any] = {k: v.value for k, v in row.parameters.items()}
            row_tags = row.tags
        else:
            ns, values, row_tags = row
        stamps.append(ns)
        for pid, value in values.items():
            # Columns are created on first use (never through setdefault, which would build
            # a list of `count` Nones for every value).
            if type(value) is float or type(value) is int:
                column = numeric.get(pid)
                if column is None:
                    column = numeric[pid] = [None] * count
                column[index] = value
            elif value is None:
                continue
            elif isinstance(value, str):
                text = strings.get(pid)
                if text is None:
                    text = strings[pid] = [None] * count
                text[index] = value
            elif isinstance(value, bytes | bytearray):
                blob = binary.get(pid)
                if blob is None:
                    blob = binary[pid] = [None] * count
                blob[index] = bytes(value)
            else:
                column = numeric.get(pid)
                if column is None:
                    column = numeric[pid] = [None] * count
                column[index] = float(value)
        for tag, tag_value in row_tags.items():
            tag_column = tags.get(tag)
            if tag_column is None:
                tag_column = tags[tag] = [None] * count
            tag_column[index] = tag_value
    return model.TimeseriesData(
        timestamps=stamps,
        numeric_values=numeric,
        string_values=strings,
        binary_values=binary,
        tag_values=tags,
    )


def to_raw(
    data: TimeseriesData | model.TimeseriesData | TimeseriesDataTimestamp | pd.DataFrame,
) -> model.TimeseriesData:
    """Any timeseries input of the producer API as the column form that travels on topics,
    validated (a ``ValidationError`` names the first bad field)."""
    if isinstance(data, TimeseriesData):
        data = data.to_raw()
    elif isinstance(data, TimeseriesDataTimestamp):
        data = rows_to_raw([data])
    elif not isinstance(data, model.TimeseriesData):
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise TypeError(
                "publish takes TimeseriesData, streamport.model.TimeseriesData, "
                f"TimeseriesDataTimestamp or a pandas DataFrame, not {type(data).__name__}"
            )
        from streamport.client._pandas import dataframe_to_timeseries

        return dataframe_to_timeseries(data)  # validated
    data.validate()
    return data


class EventData:
    """One event (Quix's ``EventData``): id, time, value and tags."""

    def __init__(
        self,
        event_id: str | None = None,
        time: int | datetime | timedelta | None = None,
        value: str | None = None,
    ) -> None:
        self.id = event_id or ""
        self.timestamp_nanoseconds = 0 if time is None else to_ns(time)
        self.value = value or ""
        self.tags: dict[str, str] = {}

    @property
    def timestamp_milliseconds(self) -> int:
        return self.timestamp_nanoseconds // 1_000_000

    @property
    def timestamp(self) -> datetime:
        return ns_to_datetime(self.timestamp_nanoseconds)

    def add_tag(self, tag_id: str, value: str) -> EventData:
        self.tags[tag_id] = value
        return self

    def add_tags(self, tags: dict[str, str]) -> EventData:
        self.tags.update(tags)
        return self

    def remove_tag(self, tag_id: str) -> EventData:
        self.tags.pop(tag_id, None)
        return self

    def clone(self) -> EventData:
        copy = EventData(self.id, self.timestamp_nanoseconds, self.value)
        copy.tags = dict(self.tags)
        return copy

    def to_raw(self) -> model.EventData:
        return model.EventData(
            id=self.id, timestamp=self.timestamp_nanoseconds, value=self.value, tags=dict(self.tags)
        )

    @classmethod
    def from_raw(cls, raw: model.EventData) -> EventData:
        event = cls(raw.id, raw.timestamp, raw.value)
        event.tags = dict(raw.tags)
        return event

    def __repr__(self) -> str:
        return f"EventData({self.id!r}, {self.timestamp_nanoseconds}, {self.value!r}, {self.tags})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventData) and self.to_raw() == other.to_raw()

    __hash__ = None  # type: ignore[assignment]
