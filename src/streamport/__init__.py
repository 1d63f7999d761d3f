"""streamport: a self-hosted real-time data platform with Quix-compatible APIs.

The SDK (``from streamport import StreamingClient, KafkaStreamingClient, App``) is loaded on
first use, so importing ``streamport`` for the server does not import pandas or the client.
"""

from typing import TYPE_CHECKING, Any

from streamport._version import __version__

if TYPE_CHECKING:
    from streamport.client import *  # noqa: F403

_SDK = frozenset(
    [
        "App",
        "AutoOffsetReset",
        "CancellationToken",
        "CancellationTokenSource",
        "CommitMode",
        "CommitOptions",
        "EventData",
        "EventLevel",
        "KafkaStreamingClient",
        "ParameterValue",
        "ParameterValueType",
        "RawMessage",
        "SaslMechanism",
        "SecurityOptions",
        "StreamEndType",
        "StreamingClient",
        "TimeseriesData",
        "TimeseriesDataTimestamp",
    ]
)

__all__ = ["__version__", *sorted(_SDK)]


def __getattr__(name: str) -> Any:
    if name in _SDK:
        import streamport.client

        return getattr(streamport.client, name)
    raise AttributeError(f"module 'streamport' has no attribute {name!r}")
