"""The stream data model: what one message of a Quix topic can hold.

The field names are snake_case in Python; ``rename="pascal"`` makes msgspec read and write the
PascalCase names of the Quix wire (``numeric_values`` <-> ``NumericValues``), so the structs *are*
the wire models of the ``JT`` codec. Structs do not check types when built in Python; the decoders
(:mod:`streamport.model.envelope`, :mod:`streamport.model.api`) do, and ``validate()`` checks what
types cannot express (aligned columns, ids without ``/``).

Example::

    data = TimeseriesData(timestamps=[1, 2], numeric_values={"speed": [10.0, None]})
    data.validate()
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sized
from datetime import datetime

import msgspec

from streamport.errors import ValidationError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "EventData",
    "StreamEnd",
    "StreamEndType",
    "StreamProperties",
    "TimeseriesData",
    "check_id",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# The wire names of the four value groups, in the order Quix writes them.
VALUE_GROUPS = ("numericValues", "stringValues", "binaryValues", "tagValues")


def check_id(value: str, field: str, what: str = "id") -> None:
    """Refuse an id that Quix cannot carry: ids must not contain ``/`` or ``\\``."""
    if "/" in value or "\\" in value:
        raise ValidationError(
            f"{field}: {what} {value!r} contains '/' or '\\'; use another separator (e.g. '_')",
            field=field,
        )


class TimeseriesData(msgspec.Struct, rename="pascal", kw_only=True):
    """Quix ``TimeseriesDataRaw``: columns of values aligned with ``timestamps`` (ns).

    A value at index *i* of any column belongs to ``timestamps[i] + epoch``. ``None`` means
    "no value at this timestamp". Non-finite floats cannot be carried by JSON (they are written as
    ``null``).
    """

    epoch: int = 0
    timestamps: list[int] = []
    numeric_values: dict[str, list[float | None]] = {}
    string_values: dict[str, list[str | None]] = {}
    binary_values: dict[str, list[bytes | None]] = {}
    tag_values: dict[str, list[str | None]] = {}

    def validate(self) -> None:
        """Raise :class:`~streamport.errors.ValidationError` naming the first bad field."""
        count = len(self.timestamps)
        if count:
            low = min(self.timestamps) + self.epoch
            high = max(self.timestamps) + self.epoch
            if low < INT64_MIN or high > INT64_MAX:
                raise ValidationError(
                    "timestamps (plus epoch) must fit in a signed 64-bit integer of nanoseconds",
                    field="timestamps",
                )
        for group, columns in zip(VALUE_GROUPS, self._groups(), strict=True):
            for pid, values in columns.items():
                field = f"{group}.{pid}"
                if group != "tagValues":
                    check_id(pid, field, "parameter id")
                if len(values) != count:
                    raise ValidationError(
                        f"timestamps has {count} items but {field} has {len(values)}",
                        field=field,
                    )

    def _groups(self) -> tuple[Mapping[str, Sized], ...]:
        return self.numeric_values, self.string_values, self.binary_values, self.tag_values

    def absolute(self) -> TimeseriesData:
        """The same data with ``epoch`` folded into the timestamps (``epoch == 0``).

        Quix readers of 3.x ignore ``Epoch``, so this is the form written to topics.
        """
        if self.epoch == 0:
            return self
        return msgspec.structs.replace(
            self, epoch=0, timestamps=[t + self.epoch for t in self.timestamps]
        )

    def parameter_ids(self) -> dict[str, str]:
        """Parameter id -> ``Numeric`` / ``String`` / ``Binary`` (tags are not parameters)."""
        kinds: dict[str, str] = {}
        for pid in self.numeric_values:
            kinds[pid] = "Numeric"
        for pid in self.string_values:
            kinds[pid] = "String"
        for pid in self.binary_values:
            kinds[pid] = "Binary"
        return kinds


class EventData(msgspec.Struct, rename="pascal", kw_only=True):
    """Quix ``EventDataRaw``: one event at ``timestamp`` (ns since the Unix epoch).

    Field order is the wire order ``{"Timestamp", "Tags", "Id", "Value"}``.
    """

    timestamp: int = 0
    tags: dict[str, str] = {}
    id: str
    value: str = ""

    def validate(self, field: str = "") -> None:
        prefix = f"{field}." if field else ""
        check_id(self.id, f"{prefix}id", "event id")
        if not INT64_MIN <= self.timestamp <= INT64_MAX:
            raise ValidationError(
                "timestamp must fit in a signed 64-bit integer of nanoseconds",
                field=f"{prefix}timestamp",
            )


class StreamProperties(msgspec.Struct, rename="pascal", kw_only=True):
    """Quix ``StreamProperties``: the stream's name, location (``/a/b``), metadata and parents."""

    name: str | None = None
    location: str | None = None
    metadata: dict[str, str] = {}
    parents: list[str] = []
    time_of_recording: datetime | None = None


class StreamEndType(enum.Enum):
    """How a stream ended. The wire carries the name (Newtonsoft ``StringEnumConverter``);
    the number (0, 1, 2) is accepted on read."""

    CLOSED = "Closed"
    ABORTED = "Aborted"
    TERMINATED = "Terminated"


class StreamEnd(msgspec.Struct, rename="pascal", kw_only=True):
    """The last message of a stream."""

    stream_end_type: StreamEndType = StreamEndType.CLOSED
