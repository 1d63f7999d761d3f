"""Plain messages: `RawTopicProducer` and `RawTopicConsumer` (no stream envelope)."""

from __future__ import annotations

from collections.abc import Callable

from streamport.broker import ConsumedRecord, Record
from streamport.client._consumer import _Fetcher
from streamport.client._core import Core
from streamport.client._enums import AutoOffsetReset
from streamport.client._sender import make_sender
from streamport.client._transport import SeekTarget


class RawMessage:
    """A plain message: `value` bytes, an optional `key`, and `metadata` (headers)."""

    def __init__(self, data: bytes | bytearray | str) -> None:
        self.value = data.encode() if isinstance(data, str) else bytes(data)
        self.key: bytes | None = None
        self.metadata: dict[str, str] = {}

    @classmethod
    def from_record(cls, record: ConsumedRecord) -> RawMessage:
        message = cls(record.value)
        message.key = record.key
        message.metadata = {k: v.decode("utf-8", "replace") for k, v in record.headers}
        return message

    def __repr__(self) -> str:
        return f"RawMessage(key={self.key!r}, value={self.value!r}, metadata={self.metadata})"


class RawTopicProducer:
    def __init__(self, core: Core, topic: str) -> None:
        self._core = core
        self.topic = topic
        self._sender = make_sender(core, topic)
        self._disposed = False
        core.producers.append(self)

    def publish(self, message: RawMessage | bytes | bytearray) -> None:
        if not isinstance(message, RawMessage):
            message = RawMessage(message)
        key = message.key.encode() if isinstance(message.key, str) else message.key
        headers = tuple((k, v.encode()) for k, v in message.metadata.items())
        self._sender.push(Record(value=message.value, key=key, headers=headers))

    def flush(self, timeout: float | None = None) -> None:
        self._sender.wait(timeout)

    def dispose(self) -> None:
        if self._disposed:
            return
        self._disposed = True
        try:
            self.flush()
        finally:
            self._sender.close()
            if self in self._core.producers:
                self._core.producers.remove(self)

    def __enter__(self) -> RawTopicProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()


class RawTopicConsumer(_Fetcher):
    """Calls ``on_message_received(consumer, RawMessage)`` for each message."""

    def __init__(
        self,
        core: Core,
        topic: str,
        consumer_group: str | None,
        auto_offset_reset: AutoOffsetReset | None,
    ) -> None:
        super().__init__(core, topic, consumer_group, auto_offset_reset, None)
        self.owner = self
        self.on_message_received: Callable[[RawTopicConsumer, RawMessage], None] | None = None
        self.on_error_occurred: Callable[[RawTopicConsumer, BaseException], None] | None = None
        core.consumers.append(self)

    def handle(self, record: ConsumedRecord) -> None:
        callback = self.on_message_received
        if callback is None:
            return
        try:
            callback(self, RawMessage.from_record(record))
        except Exception as exc:
            self._core.report(exc)
            if self.on_error_occurred is not None:
                try:
                    self.on_error_occurred(self, exc)
                except Exception as hook_exc:
                    self._core.report(hook_exc)

    def seek(self, offset: SeekTarget, partition: int | None = None) -> None:
        super().seek(offset, partition)

    def dispose(self) -> None:
        try:
            self.unsubscribe()
        finally:
            if self in self._core.consumers:
                self._core.consumers.remove(self)
