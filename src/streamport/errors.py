"""The one exception tree of streamport.

    StreamportError                 base of everything raised on purpose
    ├── ConfigError                 settings or a data directory that cannot be used
    │   └── DataDirError            a data directory that is corrupt, foreign or locked
    ├── ValidationError             bad input; names the field (`field`) and the fix
    │   ├── InvalidTopicName
    │   └── RecordTooLarge
    ├── CodecError                  bytes that are not a valid Quix envelope / model
    ├── BrokerError                 anything the log could not do  (`retriable` tells whether a retry can help)
    │   ├── UnknownTopic
    │   ├── TopicExists
    │   ├── InvalidOffset
    │   ├── BrokerUnavailable       retriable: the broker cannot durably accept the write now
    │   └── BrokerClosed
    ├── AuthError
    │   ├── Unauthenticated         401
    │   └── Forbidden               403
    └── ConnectorError              a connector could not read or write  (`retriable` as above)
        ├── Backpressure            retriable: downstream asks to wait `retry_after` seconds
        └── RecordRejected          one record can never be written (poison): dead-letter it

Errors that reach users say what is wrong and how to fix it, e.g.
``timestamps has 3 items but numericValues.speed has 2``.
"""

from __future__ import annotations


class StreamportError(Exception):
    """Base of every error streamport raises on purpose."""

    retriable: bool = False


class ConfigError(StreamportError):
    """Settings that cannot be used."""


class DataDirError(ConfigError):
    """A data directory that is corrupt, not streamport's, or in use by another process."""


class ValidationError(StreamportError):
    """Bad input. `field` names the offending field (dotted path) when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidTopicName(ValidationError):
    """A topic name outside Kafka's rules: 1..249 characters of ``[a-zA-Z0-9._-]``."""


class RecordTooLarge(ValidationError):
    """A record whose size is over the configured limit."""


class CodecError(StreamportError):
    """Bytes that are not a valid Quix message envelope or model."""


class BrokerError(StreamportError):
    """Something the log could not do."""


class UnknownTopic(BrokerError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist")
        self.topic = topic


class TopicExists(BrokerError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} already exists")
        self.topic = topic


class InvalidOffset(BrokerError):
    """An offset outside what a partition holds (e.g. a commit beyond the high watermark)."""


class BrokerUnavailable(BrokerError):
    """The broker cannot durably accept or serve a request now; a retry may succeed."""

    retriable = True


class BrokerClosed(BrokerError):
    """The broker (or consumer) was closed."""


class AuthError(StreamportError):
    pass


class Unauthenticated(AuthError):
    """No token, or a token that is unknown or revoked (HTTP 401)."""


class Forbidden(AuthError):
    """A valid token without the scope the request needs (HTTP 403)."""


class ConnectorError(StreamportError):
    """A connector could not read from or write to an outside system. `retriable` says whether
    the framework retries it (with backoff) or treats it as permanent."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class Backpressure(ConnectorError):
    """Downstream is busy: the framework waits `retry_after` seconds and delivers the batch again
    (quixstreams' ``SinkBackpressureError``, Redpanda Connect's nack)."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"backpressure: retry after {retry_after:g} s", retriable=True)
        self.retry_after = retry_after


class RecordRejected(ConnectorError):
    """A record that no retry can write (a poison record). The framework sends it to the
    dead-letter topic with this error attached and goes on. `record` is the rejected record
    when the connector knows which one it was."""

    def __init__(self, message: str, record: object = None) -> None:
        super().__init__(message, retriable=False)
        self.record = record
