"""Which partition each record of a produce call goes to, and the metadata handed back.

This is the per-record part of ``produce``, so it is written as chains of C-level ``map`` /
``compress`` calls rather than Python loops where the common cases allow: all records keyed,
or all unkeyed, and no explicit partitions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat
from operator import attrgetter

from streamport.broker.base import Record, RecordMetadata
from streamport.broker.partitioner import positive_hash, positive_hashes
from streamport.errors import ValidationError

_timestamp = attrgetter("timestamp_ms")
_metadata = partial(tuple.__new__, RecordMetadata)


def route(records: Sequence[Record], n: int, sticky: Callable[[], int], topic: str) -> list[int]:
    """The partition of each record: explicit, else murmur2 of the key, else the sticky one."""
    count = len(records)
    explicit = [r.partition for r in records]
    keys = [r.key for r in records]
    if explicit.count(None) == count:
        unkeyed = keys.count(None)
        if unkeyed == count:
            return [sticky()] * count
        if unkeyed == 0:
            return [0] * count if n == 1 else [h % n for h in positive_hashes(keys)]  # type: ignore[arg-type]
    parts = []
    chosen = -1
    for i, (p, key) in enumerate(zip(explicit, keys, strict=True)):
        if p is None:
            if key is None:
                if chosen < 0:
                    chosen = sticky()
                p = chosen
            else:
                p = positive_hash(key) % n
        elif not 0 <= p < n:
            raise ValidationError(
                f"records[{i}].partition is {p} but topic {topic!r} has {n} partitions "
                f"(0..{n - 1})",
                field=f"records[{i}].partition",
            )
        parts.append(p)
    return parts


def group(
    records: Sequence[Record], parts: list[int]
) -> tuple[dict[int, list[Record]], dict[int, list[int]] | None]:
    """Records per partition, in order, and (unless there is one) their indexes in the call.

    One stable C-level sort of the indexes by partition puts each partition's records together,
    still in call order; slicing by each partition's count splits them.
    """
    targets = sorted(set(parts))
    if len(targets) == 1:
        return {parts[0]: list(records)}, None
    order = sorted(range(len(parts)), key=parts.__getitem__)
    ordered = list(map(records.__getitem__, order))
    groups: dict[int, list[Record]] = {}
    indexes: dict[int, list[int]] = {}
    start = 0
    for p in targets:
        end = start + parts.count(p)
        groups[p] = ordered[start:end]
        indexes[p] = order[start:end]
        start = end
    return groups, indexes


def max_timestamp(records: list[Record], now: int) -> int:
    stamps = list(map(_timestamp, records))
    unset = stamps.count(None)
    if unset == len(stamps):
        return now
    newest: int = max(s for s in stamps if s is not None)
    return max(newest, now) if unset else newest


def metadata(
    count: int, bases: dict[int, int], indexes: dict[int, list[int]] | None
) -> list[RecordMetadata]:
    """The (partition, offset) of each record of the call, from each partition's base offset."""
    if indexes is None:
        [(p, base)] = bases.items()
        return list(map(_metadata, zip(repeat(p, count), range(base, base + count), strict=True)))
    out: list[RecordMetadata] = [_NONE] * count
    for p, idx in indexes.items():
        base = bases[p]
        metas = map(_metadata, zip(repeat(p, len(idx)), range(base, base + len(idx)), strict=True))
        deque(map(out.__setitem__, idx, metas), maxlen=0)
    return out


_NONE = RecordMetadata(-1, -1)
