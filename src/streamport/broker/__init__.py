"""The log: the `Broker` seam and its backends (embedded, kafka)."""

from streamport.broker.base import (
    Broker,
    ConsumedRecord,
    Consumer,
    Headers,
    OffsetReset,
    Record,
    RecordMetadata,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    Watermarks,
    validate_topic_name,
)

__all__ = [
    "Broker",
    "ConsumedRecord",
    "Consumer",
    "Headers",
    "OffsetReset",
    "Record",
    "RecordMetadata",
    "TopicConfig",
    "TopicInfo",
    "TopicPartition",
    "Watermarks",
    "validate_topic_name",
]
