"""The producer's timeseries buffer: rows accumulate and go out as one packet.

A packet is released when it has `packet_size` rows, spans `time_span_in_nanoseconds`, or has
waited `buffer_timeout` ms since its first row, and always on ``flush()`` and ``close()``. With no
condition set, each ``publish()`` is released at once. At `MAX_ROWS` rows a packet is released
whatever the settings say, so the buffer stays bounded.

Example::

    buffer = stream.timeseries.buffer
    buffer.packet_size = 100
    buffer.add_timestamp_nanoseconds(1).add_value("speed", 1.5).add_tag("car", "A").publish()
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from streamport.client._data import Row, TimeseriesData, rows_to_raw
from streamport.client._time import epoch_ns, to_ns

if TYPE_CHECKING:
    import pandas as pd

    from streamport.client._producer import StreamProducer

MAX_ROWS = 100_000


class TimeseriesDataBuilder:
    """One row being built; ``publish()`` hands it to the buffer."""

    __slots__ = ("_buffer", "_tags", "_timestamp", "_values")

    def __init__(self, buffer: TimeseriesBufferProducer, timestamp: int) -> None:
        self._buffer = buffer
        self._timestamp = timestamp
        self._values: dict[str, Any] = {}
        self._tags: dict[str, str] | None = None

    def add_value(
        self, parameter_id: str, value: float | int | str | bytes | bytearray | None
    ) -> TimeseriesDataBuilder:
        if isinstance(value, bool):
            value = float(value)
        self._values[parameter_id] = value
        return self

    def add_tag(self, tag_id: str, value: str) -> TimeseriesDataBuilder:
        if self._tags is None:
            self._tags = {}
        self._tags[tag_id] = value
        return self

    def add_tags(self, tags: dict[str, str]) -> TimeseriesDataBuilder:
        if self._tags is None:
            self._tags = {}
        self._tags.update(tags)
        return self

    def publish(self) -> None:
        self._buffer._append((self._timestamp, self._values, self._tags or {}))


class TimeseriesBufferProducer:
    def __init__(self, stream: StreamProducer) -> None:
        self._stream = stream
        self._rows: list[Row] = []
        self._first = 0
        self._generation = 0
        self.packet_size: int | None = None
        self.time_span_in_nanoseconds: int | None = None
        self.buffer_timeout: int | None = None  # ms
        self.default_tags: dict[str, str] = {}
        self._epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: datetime | int) -> None:
        self._epoch = epoch_ns(value)

    @property
    def time_span_in_milliseconds(self) -> int | None:
        span = self.time_span_in_nanoseconds
        return None if span is None else span // 1_000_000

    @time_span_in_milliseconds.setter
    def time_span_in_milliseconds(self, value: int | None) -> None:
        self.time_span_in_nanoseconds = None if value is None else value * 1_000_000

    def add_timestamp(self, time: datetime | timedelta) -> TimeseriesDataBuilder:
        return TimeseriesDataBuilder(self, to_ns(time, self._epoch))

    def add_timestamp_milliseconds(self, milliseconds: int) -> TimeseriesDataBuilder:
        return TimeseriesDataBuilder(self, self._epoch + milliseconds * 1_000_000)

    def add_timestamp_nanoseconds(self, nanoseconds: int) -> TimeseriesDataBuilder:
        return TimeseriesDataBuilder(self, self._epoch + nanoseconds)

    def publish(self, data: TimeseriesData | pd.DataFrame) -> None:
        """Add every row of `data` to the buffer."""
        if not isinstance(data, TimeseriesData):
            data = TimeseriesData.from_dataframe(data)
        for row in data.timestamps:
            values = {k: v.value for k, v in row.parameters.items()}
            self._append((row.timestamp_nanoseconds, values, dict(row.tags)))

    def _append(self, row: Row) -> None:
        with self._stream._lock:
            rows = self._rows
            if not rows:
                self._first = row[0]
                if self.buffer_timeout:
                    self._arm_timeout()
            rows.append(row)
            size = self.packet_size
            span = self.time_span_in_nanoseconds
            if (
                (size is None and span is None and not self.buffer_timeout)
                or (size is not None and len(rows) >= size)
                or (span is not None and row[0] - self._first >= span)
                or len(rows) >= MAX_ROWS
            ):
                self._release()

    def _arm_timeout(self) -> None:
        generation = self._generation
        delay = (self.buffer_timeout or 0) / 1000
        loop = self._stream.topic._core.loop

        def expire() -> None:
            with self._stream._lock:
                if self._generation == generation and self._rows:
                    self._release()

        loop.call_soon(lambda: loop.loop.call_later(delay, expire))

    def _release(self) -> None:
        """Send the buffered rows as one packet (the caller holds the stream's lock)."""
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        self._generation += 1
        raw = rows_to_raw(rows)
        if self.default_tags:
            count = len(rows)
            for tag, value in self.default_tags.items():
                column = raw.tag_values.setdefault(tag, [None] * count)
                raw.tag_values[tag] = [value if v is None else v for v in column]
        self._stream._send(raw)

    def flush(self) -> None:
        with self._stream._lock:
            self._release()
