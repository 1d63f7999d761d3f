"""How the Kafka backend reads librdkafka's delivery reports (no cluster needed)."""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import KafkaError

from streamport.broker.kafka._broker import placement


class Report:
    """The two things `placement` asks a delivered message."""

    def __init__(self, partition: int | None, offset: int | None) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset


def test_a_delivered_record_keeps_its_partition_when_the_offset_is_unknown() -> None:
    # An idempotent retry of a batch the broker already had comes back "duplicate", without
    # the offset (seen in CI right after a 7-partition topic was created): the record is still
    # in its partition; only the offset is unknown.
    assert placement(None, cast(Any, Report(5, None))) == (5, -1)
    assert placement(None, cast(Any, Report(5, -1001))) == (5, -1)
    assert placement(None, cast(Any, Report(5, 42))) == (5, 42)


def test_a_failed_delivery_has_no_placement() -> None:
    error = KafkaError(KafkaError._MSG_TIMED_OUT)
    assert placement(error, cast(Any, Report(5, 42))) == (-1, -1)
