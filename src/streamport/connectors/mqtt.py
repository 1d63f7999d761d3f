"""MQTT source and destination (aiomqtt, any MQTT 3.1.1 broker such as Mosquitto).

The **source** subscribes to topic filters (wildcards ``+`` and ``#``) at QoS 1 in a persistent
session and writes each message to the output topic: value = the payload, key = the MQTT topic,
headers ``mqtt_topic``, ``mqtt_qos``, ``mqtt_retain``. A message is acknowledged to the MQTT broker
(PUBACK) only once it is durable in streamport, so a source that dies holds its unacknowledged
messages at the broker, which sends them again when the session resumes: at-least-once.

The **destination** publishes each record to an MQTT topic made from a template
(``{topic}`` = the input topic, ``{key}`` = the record key) at QoS 1; ``write()`` returns once the
broker acknowledged every message.

Example (YAML)::

    connector: mqtt-source
    url: http://127.0.0.1:8080
    output_topic: sensors
    host: broker.local
    topics: ["plant/+/temperature", "plant/alarms/#"]
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import aiomqtt
import msgspec
from pydantic import Field, SecretStr

from streamport.connectors.base import Destination, SinkRecord, Source, SourceRecord, convert
from streamport.connectors.config import DestinationConfig, SourceConfig
from streamport.errors import ConnectorError, RecordRejected

if TYPE_CHECKING:
    from streamport.connectors.runtime import Output

log = logging.getLogger("streamport.connectors.mqtt")

QoS = Literal[0, 1, 2]


class MqttConnection(msgspec.Struct, frozen=True):
    """What both MQTT connectors need to reach a broker."""

    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str | None
    keepalive: int
    clean_session: bool


class _ClientState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    CLOSED = "closed"


def _client(conn: MqttConnection, *, max_pending: int | None = None) -> aiomqtt.Client:
    return aiomqtt.Client(
        conn.host,
        conn.port,
        username=conn.username,
        password=conn.password,
        identifier=conn.client_id,
        clean_session=conn.clean_session,
        keepalive=conn.keepalive,
        # aiomqtt's queue of received messages. When it is full aiomqtt drops a message (and
        # logs it); a dropped QoS 1/2 message is never acknowledged, so the broker sends it again
        # when the session resumes. Brokers do not reliably hold back: Mosquitto sends a resumed
        # session's whole backlog at once, whatever its in-flight limits say.
        max_queued_incoming_messages=max_pending,
        timeout=10,
    )


def _translate(exc: BaseException, what: str) -> ConnectorError:
    return ConnectorError(f"MQTT {what} failed: {exc}", retriable=True)


class MqttSourceConfig(SourceConfig):
    host: str = Field(default="127.0.0.1", description="MQTT broker host")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port")
    topics: list[str] = Field(
        default_factory=lambda: ["#"],
        min_length=1,
        description="topic filters to subscribe to (wildcards + and #)",
    )
    qos: QoS = Field(default=1, description="subscription QoS (1: at-least-once)")
    username: str | None = Field(default=None, description="MQTT user name")
    password: SecretStr | None = Field(default=None, description="MQTT password")
    client_id: str | None = Field(
        default=None,
        description="MQTT client id; the persistent session is kept under it "
        "[default: streamport-<output_topic>]",
    )
    clean_session: bool = Field(
        default=False,
        description="start a new session (drops messages queued at the broker while stopped)",
    )
    keepalive: int = Field(default=60, ge=5, description="MQTT keep-alive, seconds")
    batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="most messages written to streamport at once"
    )
    max_pending: int = Field(
        default=100_000,
        ge=100,
        description="received messages held before they are written (bounded; beyond it a "
        "message is dropped unacknowledged and the broker sends it again on reconnect)",
    )

    def connection(self) -> MqttConnection:
        return MqttConnection(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            client_id=self.client_id or f"streamport-{self.output_topic}",
            keepalive=self.keepalive,
            clean_session=self.clean_session,
        )


class MqttSource(Source[MqttSourceConfig]):
    """MQTT topics (wildcards allowed) → a streamport topic, acknowledged once durable."""

    name = "mqtt-source"
    summary = "subscribe to MQTT topic filters (QoS 1, wildcards) and write the messages"
    config_class = MqttSourceConfig

    def __init__(self, config: MqttSourceConfig) -> None:
        super().__init__(config)
        self._client: aiomqtt.Client | None = None
        self._client_state = _ClientState.DISCONNECTED
        # Handed from the receiver to the sender. Full: the receiver waits and messages gather in
        # aiomqtt's queue (bounded by max_pending, see _client).
        self._queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(config.batch_size * 2)
        self.acked = 0
        self._sending = False

    async def setup(self) -> None:
        client = _client(self.config.connection(), max_pending=self.config.max_pending)
        # PUBACK only once the record is durable in streamport (paho's manual acknowledgement;
        # aiomqtt keeps the paho client as `_client` and does not wrap this option).
        client._client.manual_ack_set(True)
        try:
            await client.__aenter__()
            for topic in self.config.topics:
                await client.subscribe(topic, qos=self.config.qos)
        except aiomqtt.MqttError as exc:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            raise _translate(exc, f"connect to {self.config.host}:{self.config.port}") from exc
        self._client = client
        self._client_state = _ClientState.CONNECTED

    async def run(self, output: Output) -> None:
        client = self._client
        if client is None:
            raise ConnectorError("MqttSource.run() before setup()")
        try:
            async with asyncio.TaskGroup() as tasks:
                receiver = tasks.create_task(self._receive(client))
                sender = tasks.create_task(self._send(client, output))
                await output.stopping.wait()
                receiver.cancel()
                # A batch being written is finished and acknowledged (else the broker would
                # send it again); an idle sender just stops.
                if not self._sending:
                    sender.cancel()
        except* aiomqtt.MqttError as group:
            exc = group.exceptions[0]
            raise _translate(exc, "receive") from exc

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._queue.put(message)
        raise aiomqtt.MqttError("the broker closed the connection")

    async def _send(self, client: aiomqtt.Client, output: Output) -> None:
        limit = self.config.batch_size
        while True:
            batch = [await self._queue.get()]
            while len(batch) < limit:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._sending = True
            await output.send([_to_record(m) for m in batch])
            # Durable: acknowledge in the order received (MQTT 3.1.1 §4.6).
            for message in batch:
                if message.qos > 0:
                    client._client.ack(message.mid, message.qos)
            self.acked += len(batch)
            self._sending = False
            if output.stopping.is_set():
                return

    async def close(self) -> None:
        client, self._client = self._client, None
        self._client_state = _ClientState.CLOSED
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)


def _to_record(message: aiomqtt.Message) -> SourceRecord:
    topic = message.topic.value
    payload = message.payload
    if isinstance(payload, str):
        value = payload.encode()
    elif isinstance(payload, bytes | bytearray):
        value = bytes(payload)
    elif payload is None:
        value = b""
    else:
        value = str(payload).encode()
    return SourceRecord(
        value=value,
        key=topic.encode(),
        headers=(
            ("mqtt_topic", topic.encode()),
            ("mqtt_qos", str(message.qos).encode()),
            ("mqtt_retain", b"1" if message.retain else b"0"),
        ),
    )


class MqttDestinationConfig(DestinationConfig):
    host: str = Field(default="127.0.0.1", description="MQTT broker host")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port")
    topic: str = Field(
        default="{topic}/{key}",
        description="MQTT topic of each message: {topic} = input topic, {key} = record key",
    )
    qos: QoS = Field(default=1, description="publish QoS (1: wait for the broker's PUBACK)")
    retain: bool = Field(default=False, description="publish retained messages")
    payload: Literal["value", "json"] = Field(
        default="value",
        description="value: the record bytes as they are; json: the record as JSON "
        "(Quix stream messages in the Reader API shape)",
    )
    username: str | None = Field(default=None, description="MQTT user name")
    password: SecretStr | None = Field(default=None, description="MQTT password")
    client_id: str | None = Field(default=None, description="MQTT client id [default: random]")
    keepalive: int = Field(default=60, ge=5, description="MQTT keep-alive, seconds")

    def connection(self) -> MqttConnection:
        return MqttConnection(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            client_id=self.client_id,
            keepalive=self.keepalive,
            clean_session=True,
        )


class MqttDestination(Destination[MqttDestinationConfig]):
    """A streamport topic → MQTT messages (QoS 1, topic from a template)."""

    name = "mqtt-destination"
    summary = "publish each record to an MQTT topic made from a template (QoS 1)"
    config_class = MqttDestinationConfig

    def __init__(self, config: MqttDestinationConfig) -> None:
        super().__init__(config)
        self._client: aiomqtt.Client | None = None
        self._client_state = _ClientState.DISCONNECTED

    async def setup(self) -> None:
        await self._connect()

    async def _connect(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        client = _client(self.config.connection())
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise _translate(exc, f"connect to {self.config.host}:{self.config.port}") from exc
        self._client = client
        self._client_state = _ClientState.CONNECTED
        return client

    def _message(self, record: SinkRecord) -> tuple[str, bytes]:
        key = record.key.decode(errors="replace") if record.key else ""
        topic = self.config.topic.format(topic=record.topic, key=key).strip("/") or record.topic
        if "+" in topic or "#" in topic:
            raise RecordRejected(f"MQTT topic {topic!r} contains a wildcard (+ or #)", record)
        if self.config.payload == "json":
            return topic, msgspec.json.encode(record.payload())
        return topic, record.value

    async def write(self, batch: list[SinkRecord]) -> None:
        messages: Sequence[tuple[str, bytes]] = convert(batch, self._message)
        client = await self._connect()
        qos, retain = self.config.qos, self.config.retain
        try:
            # Publish the batch at once (the broker acknowledges QoS 1 messages in any order);
            # the group cancels the rest if one fails.
            async with asyncio.TaskGroup() as tasks:
                for topic, payload in messages:
                    tasks.create_task(client.publish(topic, payload, qos=qos, retain=retain))
        except* aiomqtt.MqttError as group:
            await self._drop_client()
            exc = group.exceptions[0]
            raise _translate(exc, "publish") from exc

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._client_state = _ClientState.DISCONNECTED
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def close(self) -> None:
        await self._drop_client()
        self._client_state = _ClientState.CLOSED
