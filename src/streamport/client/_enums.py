"""The enums and settings objects of the Quix streaming client, with Quix's names."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from streamport import model


class StreamEndType(enum.IntEnum):
    Closed = 0
    Aborted = 1
    Terminated = 2

    def to_model(self) -> model.StreamEndType:
        return list(model.StreamEndType)[self.value]

    @classmethod
    def from_model(cls, value: model.StreamEndType) -> StreamEndType:
        return cls(list(model.StreamEndType).index(value))


class EventLevel(enum.IntEnum):
    Trace = 0
    Debug = 1
    Information = 2
    Warning = 3
    Error = 4
    Critical = 5

    def to_model(self) -> model.EventLevel:
        return list(model.EventLevel)[self.value]

    @classmethod
    def from_model(cls, value: model.EventLevel) -> EventLevel:
        return cls(list(model.EventLevel).index(value))


class AutoOffsetReset(enum.Enum):
    """Where a consumer group without a committed offset starts."""

    Latest = "latest"
    Earliest = "earliest"


class CommitMode(enum.Enum):
    Automatic = "automatic"
    Manual = "manual"


@dataclass
class CommitOptions:
    """Automatic commits: every `commit_every` messages or `commit_interval` ms, whichever
    comes first (Quix defaults: 5,000 messages, 5 s). ``auto_commit_enabled=False`` = manual."""

    auto_commit_enabled: bool = True
    commit_interval: int | None = 5000
    commit_every: int | None = 5000


class SaslMechanism(enum.Enum):
    Gssapi = "GSSAPI"
    Plain = "PLAIN"
    ScramSha256 = "SCRAM-SHA-256"
    ScramSha512 = "SCRAM-SHA-512"
    OAuthBearer = "OAUTHBEARER"


@dataclass
class SecurityOptions:
    """TLS (`ssl_certificates`: a CA file) and SASL credentials for `KafkaStreamingClient`."""

    ssl_certificates: str | None = None
    username: str | None = None
    password: str | None = None
    sasl_mechanism: SaslMechanism = SaslMechanism.ScramSha256

    def to_librdkafka(self) -> dict[str, str]:
        config: dict[str, str] = {}
        sasl = self.username is not None
        tls = self.ssl_certificates is not None
        config["security.protocol"] = {
            (True, True): "SASL_SSL",
            (True, False): "SASL_PLAINTEXT",
            (False, True): "SSL",
            (False, False): "PLAINTEXT",
        }[(sasl, tls)]
        if tls:
            config["ssl.ca.location"] = str(self.ssl_certificates)
        if sasl:
            config["sasl.mechanism"] = self.sasl_mechanism.value
            config["sasl.username"] = str(self.username)
            config["sasl.password"] = self.password or ""
        return config
