"""Timestamps as Quix takes them: datetimes, timedeltas from an epoch, or nanoseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_ns(value: datetime) -> int:
    """Nanoseconds since the Unix epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def timedelta_to_ns(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1000


def ns_to_datetime(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value // 1000)


def to_ns(value: datetime | timedelta | int, epoch: int = 0) -> int:
    """`value` as nanoseconds since the Unix epoch; timedeltas and ints count from `epoch`."""
    if isinstance(value, datetime):
        return datetime_to_ns(value)
    if isinstance(value, timedelta):
        return epoch + timedelta_to_ns(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return epoch + value
    raise TypeError(f"a timestamp must be a datetime, timedelta or int, got {type(value).__name__}")


def epoch_ns(epoch: datetime | int | None) -> int:
    if epoch is None:
        return 0
    if isinstance(epoch, datetime):
        return datetime_to_ns(epoch)
    return int(epoch)
