"""Kafka's default partitioner: ``toPositive(murmur2(key)) % partitions``.

A port of the 32-bit murmur2 in Kafka's Java client (``org.apache.kafka.common.utils.Utils.murmur2``,
seed ``0x9747b28c``), so a key lands on the same partition here as with a real Kafka producer.
Keys repeat (one stream = one key), so the hash is memoised in a bounded cache.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The signed 32-bit murmur2 hash of `data`, equal to Kafka's ``Utils.murmur2``.

    >>> murmur2(b"21")
    -973932308
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


_CACHE: dict[bytes, int] = {}
_CACHE_SIZE = 65536  # keys remembered; the cache is emptied when it is full


def positive_hash(key: bytes) -> int:
    """``toPositive(murmur2(key))``, memoised (the partition is this modulo the partition count)."""
    h = _CACHE.get(key)
    if h is None:
        h = murmur2(key) & 0x7FFFFFFF
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = h
    return h


def positive_hashes(keys: list[bytes]) -> list[int]:
    """`positive_hash` of each key; one C-level pass when all keys were seen before."""
    try:
        return list(map(_CACHE.__getitem__, keys))
    except KeyError:
        return list(map(positive_hash, keys))


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for `key` among `partitions`.

    >>> partition_for_key(b"foobar", 4)
    2
    """
    return positive_hash(key) % partitions
