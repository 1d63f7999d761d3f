"""The Reader hub (``/reader/hub``): the Quix Reader API over SignalR, fed by the fan-out.

Each connection is one `Subscriber` of the process's `FanOut`. The fan-out hands over the pushes
of one broker fetch per group of connections that get the same pushes (`Pushes`); each push is
serialised once per hub protocol (`PreparedMessage` cached on the `Push`), the group's pushes are
joined once per protocol (`PreparedBatch` cached on the `Pushes`), and that one blob goes to each
connection: on a raw WebSocket (``signalr.WebSocketProtocol``) as the same prebuilt frame written
straight to the socket while it has room, else into the connection's bounded outgoing queue
(which closes the connection when full). Each subscription needs ``read:<topic>``.
A topic of ``*`` subscribes to every existing topic the caller may read (topics created later
are not included).
"""

from __future__ import annotations

from typing import Any

from streamport.gateway.hubs._common import (
    MAX_SUBSCRIPTIONS,
    TopicNames,
    hub_errors,
    principal_of,
    require,
)
from streamport.gateway.signalr import (
    Context,
    HubError,
    PreparedBatch,
    PreparedMessage,
    hub_method,
)
from streamport.streams.fanout import FanOut, Kind, Push, Pushes, Subscriber, TopicReader


def _prepared(push: Push) -> PreparedMessage:
    prepared = push.prepared
    if prepared is None:
        prepared = push.prepared = PreparedMessage(push.target, push.args)
    return prepared  # type: ignore[no-any-return]


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise HubError(f"{field} must be a non-empty string ('*' for any)")
    return value


class ReaderHub:
    """One per connection; see the module docstring and ``docs/hubs.md``."""

    def __init__(self, ctx: Context, fanout: FanOut, topics: TopicNames) -> None:
        self.ctx = ctx
        self._fanout = fanout
        self._topics = topics
        self.subscriber = Subscriber(self._send, ctx.connection_id, self._send_many)
        self._count = 0

    def _send(self, push: Push) -> bool:
        return self.ctx.send_prepared(_prepared(push))

    def _send_many(self, pushes: Pushes) -> bool:
        batch = pushes.prepared
        if batch is None:
            batch = pushes.prepared = PreparedBatch([_prepared(p) for p in pushes.items])
        return self.ctx.send_batch(batch)

    async def on_disconnected(self, exc: BaseException | None) -> None:
        self._fanout.unsubscribe_all(self.subscriber)

    async def _resolve(self, topic: Any) -> list[str]:
        if topic == "*":
            who = principal_of(self.ctx)
            names = [t.name for t in await self._fanout.broker.list_topics()]
            return sorted(n for n in names if who.allows("read", n))
        name = await self._topics.resolve(topic)
        require(self.ctx, "read", name)
        return [name]

    async def _subscribe(
        self, method: str, kind: Kind, topic: Any, stream: Any = "*", item: Any = "*"
    ) -> list[TopicReader]:
        with hub_errors(method):
            stream = _text(stream, "streamId")
            item = _text(item, "id")
            names = await self._resolve(topic)
            if self._count + len(names) > MAX_SUBSCRIPTIONS:
                raise HubError(
                    f"too many subscriptions on this connection (limit {MAX_SUBSCRIPTIONS}): "
                    "unsubscribe first or use '*' wildcards"
                )
            readers = []
            for name in names:
                readers.append(
                    await self._fanout.subscribe(self.subscriber, kind, name, stream, item)
                )
                self._count += 1
            return readers

    async def _unsubscribe(
        self, method: str, kind: Kind, topic: Any, stream: Any = "*", item: Any = "*"
    ) -> None:
        with hub_errors(method):
            stream = _text(stream, "streamId")
            item = _text(item, "id")
            for name in await self._resolve(topic):
                if self._fanout.unsubscribe(self.subscriber, kind, name, stream, item):
                    self._count -= 1

    # -- parameters and events ----------------------------------------------------------------

    @hub_method("SubscribeToParameter")
    async def subscribe_to_parameter(self, topic: Any, stream_id: Any, parameter_id: Any) -> None:
        await self._subscribe(
            "SubscribeToParameter", Kind.PARAMETER, topic, stream_id, parameter_id
        )

    @hub_method("UnsubscribeFromParameter")
    async def unsubscribe_from_parameter(
        self, topic: Any, stream_id: Any, parameter_id: Any
    ) -> None:
        await self._unsubscribe(
            "UnsubscribeFromParameter", Kind.PARAMETER, topic, stream_id, parameter_id
        )

    @hub_method("SubscribeToEvent")
    async def subscribe_to_event(self, topic: Any, stream_id: Any, event_id: Any) -> None:
        await self._subscribe("SubscribeToEvent", Kind.EVENT, topic, stream_id, event_id)

    @hub_method("UnsubscribeFromEvent")
    async def unsubscribe_from_event(self, topic: Any, stream_id: Any, event_id: Any) -> None:
        await self._unsubscribe("UnsubscribeFromEvent", Kind.EVENT, topic, stream_id, event_id)

    @hub_method("UnsubscribeFromStream")
    async def unsubscribe_from_stream(self, topic: Any, stream_id: Any) -> None:
        with hub_errors("UnsubscribeFromStream"):
            stream = _text(stream_id, "streamId")
            for name in await self._resolve(topic):
                self._count -= self._fanout.unsubscribe_stream(self.subscriber, name, stream)

    # -- definitions --------------------------------------------------------------------------

    @hub_method("SubscribeToParameterDefinitions")
    async def subscribe_to_parameter_definitions(self, topic: Any, stream_id: Any) -> None:
        await self._subscribe(
            "SubscribeToParameterDefinitions", Kind.PARAMETER_DEFINITIONS, topic, stream_id
        )

    @hub_method("UnsubscribeFromParameterDefinitions")
    async def unsubscribe_from_parameter_definitions(self, topic: Any, stream_id: Any) -> None:
        await self._unsubscribe(
            "UnsubscribeFromParameterDefinitions", Kind.PARAMETER_DEFINITIONS, topic, stream_id
        )

    @hub_method("SubscribeToEventDefinitions")
    async def subscribe_to_event_definitions(self, topic: Any, stream_id: Any) -> None:
        await self._subscribe(
            "SubscribeToEventDefinitions", Kind.EVENT_DEFINITIONS, topic, stream_id
        )

    @hub_method("UnsubscribeFromEventDefinitions")
    async def unsubscribe_from_event_definitions(self, topic: Any, stream_id: Any) -> None:
        await self._unsubscribe(
            "UnsubscribeFromEventDefinitions", Kind.EVENT_DEFINITIONS, topic, stream_id
        )

    # -- topic-wide ---------------------------------------------------------------------------

    @hub_method("SubscribeToActiveStreams")
    async def subscribe_to_active_streams(self, topic: Any) -> list[dict[str, Any]]:
        """Returns the current active streams (rebuilt from the topic's recent messages)."""
        readers = await self._subscribe("SubscribeToActiveStreams", Kind.ACTIVE_STREAMS, topic)
        return [stream for reader in readers for stream in reader.active_streams()]

    @hub_method("UnsubscribeFromActiveStreams")
    async def unsubscribe_from_active_streams(self, topic: Any) -> None:
        await self._unsubscribe("UnsubscribeFromActiveStreams", Kind.ACTIVE_STREAMS, topic)

    @hub_method("SubscribeToTopicMetrics")
    async def subscribe_to_topic_metrics(self, topic: Any) -> list[dict[str, Any]]:
        """Returns the samples of the last 5 minutes, oldest first."""
        readers = await self._subscribe("SubscribeToTopicMetrics", Kind.METRICS, topic)
        return [
            sample.to_api(reader.topic_id, reader.topic)
            for reader in readers
            for sample in reader.metrics.history()
        ]

    @hub_method("UnsubscribeFromTopicMetrics")
    async def unsubscribe_from_topic_metrics(self, topic: Any) -> None:
        await self._unsubscribe("UnsubscribeFromTopicMetrics", Kind.METRICS, topic)

    @hub_method("SubscribeToPackages")
    async def subscribe_to_packages(self, topic: Any) -> None:
        await self._subscribe("SubscribeToPackages", Kind.PACKAGES, topic)

    @hub_method("SubscribeToTopicPackages")
    async def subscribe_to_topic_packages(self, topic: Any) -> None:
        await self._subscribe("SubscribeToTopicPackages", Kind.PACKAGES, topic)

    @hub_method("UnsubscribeFromPackages")
    async def unsubscribe_from_packages(self, topic: Any) -> None:
        await self._unsubscribe("UnsubscribeFromPackages", Kind.PACKAGES, topic)

    @hub_method("UnsubscribeFromTopicPackages")
    async def unsubscribe_from_topic_packages(self, topic: Any) -> None:
        await self._unsubscribe("UnsubscribeFromTopicPackages", Kind.PACKAGES, topic)
