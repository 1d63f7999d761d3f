"""The two connector kinds and the records they exchange with the framework.

One lifecycle (quixstreams 3.x sources/sinks): ``configure`` (the constructor takes the typed
settings) → ``setup()`` (connect; the framework retries retriable failures with backoff) →
``run(output)`` for a source, or ``write(batch)`` … ``flush()`` for a destination → ``close()``.

Contract (Redpanda Connect's): every source record carries its ack, called once the record is
durable in streamport; destinations raise `Backpressure(retry_after)` when the outside system asks
to wait, a retriable error for transient failures, `RecordRejected` for a poison record; they
never commit offsets: the framework's one `Checkpoint` flushes them and only then commits.

Example::

    class PrintDestination(Destination[DestinationConfig]):
        name = "print"
        summary = "print each record"
        config_class = DestinationConfig

        async def write(self, batch: list[SinkRecord]) -> None:
            for record in batch:
                print(record.payload())
"""

from __future__ import annotations

import base64
import enum
import itertools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import msgspec

from streamport.broker import ConsumedRecord, Headers, Record
from streamport.connectors.config import ConnectorConfig, DestinationConfig, SourceConfig
from streamport.errors import CodecError, RecordRejected
from streamport.model import decode, to_api

if TYPE_CHECKING:
    from streamport.connectors.runtime import Output

Ack = Callable[[], Awaitable[None]]
SourceConfigT = TypeVar("SourceConfigT", bound=SourceConfig)
DestinationConfigT = TypeVar("DestinationConfigT", bound=DestinationConfig)
ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


class ConnectorState(enum.Enum):
    CONFIGURED = "configured"
    READY = "ready"  # setup() succeeded
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(slots=True)
class SourceRecord:
    """A record a source hands to `Output.send`; `ack` runs once it is durable in streamport."""

    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    ack: Ack | None = None

    def to_record(self) -> Record:
        return Record(value=self.value, key=self.key, headers=self.headers)


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


class SinkRecord(msgspec.Struct, frozen=True, gc=False, repr_omit_defaults=True):
    """A record of the input topic handed to `Destination.write` (immutable; equal and hashed by
    its fields, the payload cache aside). A msgspec struct built in C and not tracked by the
    garbage collector (like `ConsumedRecord`; it refers to no object that could refer back to
    it), since one is made for every record a destination reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int
    # The payload once computed, set in place (`msgspec.structs.force_setattr`): no dict per
    # record for a cache most destinations never use.
    _cache: Any = _UNSET

    @classmethod
    def of(cls, record: ConsumedRecord) -> SinkRecord:
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            record.headers,
            record.timestamp_ms,
        )

    @classmethod
    def batch_of(cls, records: Iterable[ConsumedRecord]) -> list[SinkRecord]:
        """``[SinkRecord.of(r) for r in records]`` with C-level loops only (``map`` over
        msgspec's ``astuple``, the struct built from the tuple): a batch costs no Python call
        per record. `ConsumedRecord`'s fields are the first fields of `SinkRecord`, in order
        (checked at import)."""
        return list(itertools.starmap(cls, map(msgspec.structs.astuple, records)))

    def _identity(self) -> tuple[Any, ...]:
        return (
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.headers,
            self.timestamp_ms,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SinkRecord):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def payload(self) -> Any:
        """The record as JSON-able data.

        A Quix stream message becomes ``{"streamId", "type", ...}`` in the Reader API's camelCase
        shape (e.g. ``{"streamId": "s1", "type": "EventData", "id": "click", "value": "..."}``);
        other JSON values are decoded; other bytes become text (UTF-8) or
        ``{"base64": ...}``.
        """
        cached = self._cache
        if cached is not _UNSET:
            return cached
        try:
            message = decode(self.value, self.headers)
        except CodecError:
            result: Any = _plain(self.value)
        else:
            body: Any = to_api(message)
            result = {
                "streamId": self.key.decode(errors="replace") if self.key else None,
                "type": type(message).__name__,
                **(body if isinstance(body, dict) else {"items": body}),
            }
        msgspec.structs.force_setattr(self, "_cache", result)
        return result


if SinkRecord.__struct_fields__[: len(ConsumedRecord.__struct_fields__)] != (
    ConsumedRecord.__struct_fields__
):  # pragma: no cover - a guard for `SinkRecord.batch_of` if either struct changes
    raise ImportError("SinkRecord must start with ConsumedRecord's fields, in order")


def _plain(value: bytes) -> Any:
    try:
        return msgspec.json.decode(value)
    except msgspec.DecodeError:
        pass
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def convert(batch: Sequence[SinkRecord], fn: Callable[[SinkRecord], Any]) -> list[Any]:
    """``[fn(r) for r in batch]``, raising `RecordRejected` naming the record that failed, so
    the framework dead-letters that record and retries the rest. Do this before any side
    effect, so a rejected batch has written nothing."""
    out: list[Any] = []
    for record in batch:
        try:
            out.append(fn(record))
        except RecordRejected as exc:
            exc.record = exc.record or record
            raise
        except (ValueError, TypeError, KeyError, CodecError) as exc:
            raise RecordRejected(f"{type(exc).__name__}: {exc}", record) from exc
    return out


class Connector(ABC, Generic[ConfigT]):
    """What both kinds share. Subclasses set `name`, `summary` and `config_class`."""

    kind: ClassVar[Literal["source", "destination"]]
    name: ClassVar[str]
    summary: ClassVar[str]
    config_class: ClassVar[type[ConnectorConfig]]

    def __init__(self, config: ConfigT) -> None:
        """configure: keep the settings; no I/O here."""
        self.config = config
        self.state = ConnectorState.CONFIGURED

    async def setup(self) -> None:
        """Connect to the outside system. Raise a retriable error (e.g. `OSError`,
        ``ConnectorError(retriable=True)``) to have the framework retry with backoff."""

    async def close(self) -> None:
        """Release connections and files. Called once, also after a failure."""


class Source(Connector[SourceConfigT]):
    """Reads an outside system and sends records to ``config.output_topic``."""

    kind: ClassVar[Literal["source", "destination"]] = "source"

    @abstractmethod
    async def run(self, output: Output) -> None:
        """Read until ``output.stopping`` is set (or the input ends); hand records to
        ``await output.send(records)``, which returns once they are durable and acked."""


class Destination(Connector[DestinationConfigT]):
    """Writes the records of ``config.input_topic`` to an outside system."""

    kind: ClassVar[Literal["source", "destination"]] = "destination"

    @abstractmethod
    async def write(self, batch: list[SinkRecord]) -> None:
        """Write (or buffer) `batch`. Raise `Backpressure`, a retriable error, or
        `RecordRejected` (see the module docstring). May be called again with the same
        records after a failure: at-least-once."""

    def prepare(self, batch: list[SinkRecord]) -> None:
        """Optional: get ready to write `batch` (decode, format), which `write` gets next.

        The framework calls it with the batch it read ahead, while the previous batch's
        ``write()`` waits for the outside system, so CPU work done here overlaps that wait (a
        database server working in its own process). Pure preparation only: no I/O, no side
        effect that ``write()`` could not do again; ``write(batch)`` must work without it
        (it may be skipped, or the state it relies on may change in between). An exception
        raised here is ignored (``write()`` meets it again)."""

    async def flush(self) -> None:
        """Make everything written so far durable; the checkpoint commits offsets only after
        this returns."""
