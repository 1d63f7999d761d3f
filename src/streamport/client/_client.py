"""The two clients: `StreamingClient` (a streamport gateway) and `KafkaStreamingClient` (Kafka).

Both hand out the same producers and consumers; only the transport under them differs.

Example::

    client = StreamingClient("http://127.0.0.1:8080", token)   # or KafkaStreamingClient("host:9092")
    with client.get_topic_producer("cars") as producer:
        producer.create_stream().events.add_timestamp_nanoseconds(1).add_value("go", "1").publish()
    client.dispose()
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from typing import Self

from streamport.client._consumer import TopicConsumer
from streamport.client._core import Core, ErrorHook
from streamport.client._enums import AutoOffsetReset, CommitMode, CommitOptions, SecurityOptions
from streamport.client._native import NativeTransport
from streamport.client._producer import TopicProducer
from streamport.client._raw import RawTopicConsumer, RawTopicProducer
from streamport.client._transport import KafkaTransport, Transport

URL_ENV = "STREAMPORT_URL"
TOKEN_ENV = "STREAMPORT_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_URL = "http://127.0.0.1:8080"

# Live clients, so App.run() can subscribe their consumers and dispose them at shutdown (the
# legacy SDK's App is global too). Weak: a client nobody holds is not kept alive by this.
live_clients: weakref.WeakSet[_Client] = weakref.WeakSet()


class _Client:
    def __init__(self, transport: Transport, on_error: ErrorHook | None, name: str) -> None:
        self._core = Core(transport, on_error, name)
        live_clients.add(self)

    @property
    def on_error(self) -> ErrorHook | None:
        """Called with every error of a callback or a background write (default: logged)."""
        return self._core.on_error

    @on_error.setter
    def on_error(self, hook: ErrorHook | None) -> None:
        self._core.on_error = hook

    @property
    def error_count(self) -> int:
        return self._core.error_count

    def get_topic_producer(self, topic: str) -> TopicProducer:
        self._core.start()
        return TopicProducer(self._core, topic)

    def get_topic_consumer(
        self,
        topic: str,
        consumer_group: str | None = None,
        commit_settings: CommitOptions | CommitMode | None = None,
        auto_offset_reset: AutoOffsetReset = AutoOffsetReset.Latest,
    ) -> TopicConsumer:
        self._core.start()
        return TopicConsumer(self._core, topic, consumer_group, auto_offset_reset, commit_settings)

    def get_raw_topic_producer(self, topic: str) -> RawTopicProducer:
        self._core.start()
        return RawTopicProducer(self._core, topic)

    def get_raw_topic_consumer(
        self,
        topic: str,
        consumer_group: str | None = None,
        auto_offset_reset: AutoOffsetReset | None = None,
    ) -> RawTopicConsumer:
        self._core.start()
        return RawTopicConsumer(self._core, topic, consumer_group, auto_offset_reset)

    def dispose(self) -> None:
        """Stop consumers (committing what they processed), flush producers, close the
        connection and join the client's thread."""
        live_clients.discard(self)
        self._core.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()


class StreamingClient(_Client):
    """A client of a streamport server over its native WebSocket protocol.

    `url` and `token` default to the ``STREAMPORT_URL`` and ``STREAMPORT_TOKEN`` environment
    variables that streamport injects (as Quix injects ``Quix__Sdk__Token``); this constructor
    is the one documented place where the SDK reads the environment.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, on_error: ErrorHook | None = None
    ) -> None:
        url = url or os.environ.get(URL_ENV) or DEFAULT_URL
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        super().__init__(NativeTransport(url, token or None), on_error, "streamport-client")


class KafkaStreamingClient(_Client):
    """A client of Apache Kafka, writing and reading the Quix message envelope.

    `properties` are librdkafka settings passed through (they win over `security_options`).
    """

    def __init__(
        self,
        broker_address: str,
        security_options: SecurityOptions | None = None,
        properties: Mapping[str, str] | None = None,
        debug: bool = False,
        *,
        on_error: ErrorHook | None = None,
    ) -> None:
        config = security_options.to_librdkafka() if security_options else {}
        config.update(properties or {})
        super().__init__(
            KafkaTransport(broker_address, config), on_error, "streamport-kafka-client"
        )
