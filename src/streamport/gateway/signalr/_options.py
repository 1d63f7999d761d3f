"""Server options, the metrics hook and the authentication callback type."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from streamport.errors import ConfigError


class Transport(enum.Enum):
    WEB_SOCKETS = "WebSockets"
    SERVER_SENT_EVENTS = "ServerSentEvents"
    LONG_POLLING = "LongPolling"


ALL_TRANSPORTS = frozenset(Transport)


class MetricEvent(enum.Enum):
    """What the server counts. Errors are counted once each; the log says more."""

    CONNECTED = "connected"  # handshake completed
    DISCONNECTED = "disconnected"
    BAD_FRAME = "bad_frame"  # unparsable framing or message: the connection is closed
    MESSAGE_TOO_LARGE = "message_too_large"
    UNKNOWN_METHOD = "unknown_method"
    BINDING_ERROR = "binding_error"  # wrong argument count or types
    HUB_ERROR = "hub_error"  # a hub method raised HubError
    UNEXPECTED_ERROR = "unexpected_error"  # a hub method raised anything else
    OVERFLOW_CLOSE = "overflow_close"  # a client too slow for its outgoing queue was closed
    HANDSHAKE_FAILED = "handshake_failed"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    CLIENT_TIMEOUT = "client_timeout"
    AUTH_FAILED = "auth_failed"
    EXPIRED = "expired"  # negotiated or long-polling connection unused for disconnect_timeout


class Metrics(Protocol):
    """The metrics hook: called on the event loop, must not block (increment a counter)."""

    def count(self, event: MetricEvent) -> None: ...


class NullMetrics:
    def count(self, event: MetricEvent) -> None:
        pass


class CountingMetrics:
    """Counts events in a dict; handy in tests and as an adapter to prometheus counters."""

    def __init__(self) -> None:
        self.counts: dict[MetricEvent, int] = dict.fromkeys(MetricEvent, 0)

    def count(self, event: MetricEvent) -> None:
        self.counts[event] += 1

    def __getitem__(self, event: MetricEvent) -> int:
        return self.counts[event]


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What an `Authenticator` sees: the token (header or ``access_token`` query) and the request."""

    token: str | None
    headers: Mapping[str, str]
    query: Mapping[str, str]
    path: str


Authenticator = Callable[[AuthRequest], Awaitable[object]]
"""Returns the principal for a request, or raises `streamport.errors.Unauthenticated` (401) /
`streamport.errors.Forbidden` (403). Called on negotiate and on every later request of a connection."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Everything configurable; the defaults are ASP.NET Core's.

    Example::

        ServerOptions(keep_alive_interval=10, max_message_size=1 << 20, allow_origin=lambda o: True)
    """

    transports: frozenset[Transport] = ALL_TRANSPORTS
    keep_alive_interval: float = (
        15.0  # hub Ping after this long without sending (not on long polling)
    )
    client_timeout: float = 30.0  # close after this long without receiving anything
    handshake_timeout: float = 15.0
    disconnect_timeout: float = (
        15.0  # dispose negotiated / long-polling connections unused this long
    )
    poll_timeout: float = 90.0  # a long poll with nothing to send answers 200 empty after this
    max_message_size: int | None = 32 * 1024  # per incoming message; None = unlimited
    outgoing_queue_messages: int = 1024  # per connection; a client that lets it fill is closed
    outgoing_queue_bytes: int = 8 * 1024 * 1024
    incoming_queue_messages: int = (
        64  # parsed messages waiting for the hub; the reader waits when full
    )
    max_batch_bytes: int = 256 * 1024  # several messages share one frame / poll body up to this
    stream_buffer_capacity: int = 10  # items of a client-to-server stream not yet consumed
    detailed_errors: bool = (
        False  # append "<Type>: <message>" to error texts, as EnableDetailedErrors
    )
    min_negotiate_version: int = 0
    authenticate: Authenticator | None = None
    allow_origin: Callable[[str], bool] | None = None  # CORS: None = no cross-origin browser access
    metrics: Metrics = field(default_factory=NullMetrics)
    close_grace: float = 1.0  # how long a closing transport may take to flush before it is cut
    # ASP.NET's MaximumParallelInvocationsPerClient: how many plain (non-streaming) invocations of
    # one connection may run at once. They START in arrival order; completions may come back in
    # any order (the protocol matches them by invocation id). When N are running, the dispatcher
    # waits, so the incoming queue fills and TCP pushes back on the client.
    max_parallel_invocations: int = 1

    def __post_init__(self) -> None:
        if self.max_parallel_invocations < 1:
            raise ConfigError(
                f"max_parallel_invocations must be at least 1, not {self.max_parallel_invocations}"
            )
