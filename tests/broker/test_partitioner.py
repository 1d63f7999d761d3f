"""murmur2 against the values Kafka's own tests publish (clients UtilsTest.testMurmur2)."""

from __future__ import annotations

import pytest

from streamport.broker.partitioner import murmur2, partition_for_key

KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    # Published next to Kafka's implementation by other ports (every tail length 1..5).
    b"1": -1993445489,
    b"12": 126087238,
    b"123": -267702483,
    b"1234": -1614185708,
    b"12345": -1188365604,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_MURMUR2.items())
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_is_to_positive_mod_n() -> None:
    for key, h in KAFKA_MURMUR2.items():
        for n in (1, 2, 3, 7, 12, 100):
            assert partition_for_key(key, n) == (h & 0x7FFFFFFF) % n
    assert partition_for_key(b"foobar", 4) == 2


def test_empty_key() -> None:
    assert 0 <= partition_for_key(b"", 5) < 5
