"""The one place where librdkafka's errors become streamport's.

Every call into confluent_kafka that can fail goes through :func:`translated` (a context manager
around the blocking call) or :func:`translate` (for errors that arrive as values, such as delivery
reports and consumed error messages). Nothing else in the backend catches ``KafkaException``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import KafkaError, KafkaException

from streamport.errors import (
    BrokerClosed,
    BrokerError,
    BrokerUnavailable,
    InvalidOffset,
    InvalidTopicName,
    RecordTooLarge,
    StreamportError,
    TopicExists,
    UnknownTopic,
    ValidationError,
)

_UNKNOWN_TOPIC = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError.UNKNOWN_TOPIC_ID,
}
_TOO_LARGE = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
}
# The broker or the network is (for now) unable to serve: a later retry can succeed.
_UNAVAILABLE = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TIMED_OUT_QUEUE,
    KafkaError._QUEUE_FULL,
    KafkaError._WAIT_COORD,
    KafkaError._RESOLVE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.BROKER_NOT_AVAILABLE,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_COORDINATOR,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.KAFKA_STORAGE_ERROR,
    KafkaError.THROTTLING_QUOTA_EXCEEDED,
}
_AUTH = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.UNSUPPORTED_SASL_MECHANISM,
    KafkaError.ILLEGAL_SASL_STATE,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


def translate(error: KafkaError, *, topic: str | None = None) -> StreamportError:
    """The streamport error for a librdkafka error (the caller raises it ``from`` the original)."""
    code = error.code()
    detail = f"{error.str()} [{error.name()}]"
    if code in _UNKNOWN_TOPIC and topic is not None:
        return UnknownTopic(topic)
    if code == KafkaError.TOPIC_ALREADY_EXISTS and topic is not None:
        return TopicExists(topic)
    if code == KafkaError.TOPIC_EXCEPTION:
        return InvalidTopicName(f"Kafka rejected topic name {topic!r}: {detail}", field="topic")
    if code in _TOO_LARGE:
        return RecordTooLarge(
            f"record too large for Kafka: {detail}; keep records under the broker's "
            "message.max.bytes (or raise it on the topic and in the client)",
            field="value",
        )
    if code in (KafkaError.INVALID_PARTITIONS, KafkaError.INVALID_CONFIG):
        return ValidationError(f"Kafka rejected the topic settings: {detail}", field="config")
    if code in (KafkaError._UNKNOWN_PARTITION, KafkaError.OFFSET_OUT_OF_RANGE):
        return InvalidOffset(f"no such partition or offset in {topic!r}: {detail}")
    if code in _AUTH:
        # Not an AuthError: those are the gateway's 401/403. The broker refused our credentials.
        return BrokerError(
            f"Kafka refused the client's credentials or permissions: {detail}; check the "
            "security.protocol / sasl.* / ssl.* client settings and the ACLs"
        )
    if code == KafkaError._DESTROY:
        return BrokerClosed("the Kafka client was closed")
    if code in _UNAVAILABLE or (error.retriable() and not error.fatal()):
        return BrokerUnavailable(f"Kafka is unavailable: {detail}")
    return BrokerError(f"Kafka error: {detail}")


@contextmanager
def translated(*, topic: str | None = None) -> Iterator[None]:
    """Run a confluent_kafka call, raising streamport errors (chained) for Kafka's."""
    try:
        yield
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError):
            raise translate(error, topic=topic) from exc
        raise BrokerError(f"Kafka error: {exc}") from exc
