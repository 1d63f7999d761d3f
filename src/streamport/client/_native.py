"""`NativeTransport`: the SDK seam over the gateway's WebSocket protocol (``/sdk/ws``).

One WebSocket per client. Requests are MessagePack frames with ids; a reader task settles the
waiting futures. A lost connection fails every waiting request with ``BrokerUnavailable``
(retriable); the next request connects again (at most one attempt per backoff period, 0.2 s
doubling to 5 s, so a gateway that is down is not hammered) and `generation` counts the
connections made. A subscription notices a new generation at its next request and subscribes
again (the gateway forgot it with the old connection): a consumer group resumes from its committed
offsets, and every subscription then seeks each partition it has read to where it stopped, so
nothing is skipped (records processed but not yet committed may come again: at least once).
An error frame about the connection (id 0) or ``aclose`` stops for good; a refused reconnection
(a revoked token) is tried again like a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from streamport import errors
from streamport.broker import ConsumedRecord, OffsetReset, Record
from streamport.client._transport import SeekTarget, Subscription
from streamport.model.native_frames import (
    Acked,
    Commit,
    Done,
    Failed,
    Fetch,
    Fetched,
    Produce,
    Reply,
    Request,
    Seek,
    Subscribe,
    Subscribed,
    Unsubscribe,
    WireRecord,
)

PATH = "/sdk/ws"
MAX_IN_FLIGHT = 16  # requests waiting for their reply; more wait for a slot
MAX_FRAME_BYTES = 64 * 1024 * 1024
RECONNECT_FIRST = 0.2  # seconds between attempts to reconnect, doubling up to RECONNECT_MAX
RECONNECT_MAX = 5.0

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Reply)


def ws_url(url: str) -> str:
    """``http(s)://host:port[/prefix]`` (or ``ws(s)://``) -> the WebSocket URL of ``/sdk/ws``."""
    base = url.rstrip("/")
    for scheme, ws in (("http://", "ws://"), ("https://", "wss://")):
        if base.startswith(scheme):
            base = ws + base[len(scheme) :]
    if not base.startswith(("ws://", "wss://")):
        raise errors.ConfigError(
            f"invalid streamport URL {url!r}: use http://HOST:PORT (e.g. http://127.0.0.1:8080)"
        )
    return base if base.endswith(PATH) else base + PATH


def _error(failed: Failed) -> errors.StreamportError:
    """The streamport error a reply names (its class by name, else a BrokerError)."""
    cls = getattr(errors, failed.error, None)
    if isinstance(cls, type) and issubclass(cls, errors.ValidationError):
        return cls(failed.message, failed.field)
    if cls in (errors.UnknownTopic, errors.TopicExists):
        exc: errors.StreamportError = errors.BrokerError(failed.message)
    elif isinstance(cls, type) and issubclass(cls, errors.StreamportError):
        exc = cls(failed.message)
    else:
        exc = errors.BrokerError(f"{failed.error}: {failed.message}")
    if failed.retriable:
        exc.retriable = True
    return exc


class NativeTransport:
    def __init__(self, url: str, token: str | None) -> None:
        self._url = ws_url(url)
        self._token = token
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._failure: errors.StreamportError | None = None
        self._closed = False
        self.generation = 0  # connections made so far (subscriptions compare theirs to it)
        self._connecting: asyncio.Lock | None = None
        self._next_attempt = 0.0  # monotonic time before which no reconnection is tried
        self._backoff = RECONNECT_FIRST

    async def start(self) -> None:
        """Connect (the first time; a failure raises ``BrokerUnavailable``)."""
        await self._connect()

    async def _connect(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            self._ws = await connect(
                self._url,
                additional_headers=headers,
                max_size=MAX_FRAME_BYTES,
                ping_interval=20,
                open_timeout=30,
                # No permessage-deflate: packets are already compact JSON, and compressing them
                # cost the client and the gateway (which inflates every frame) more CPU than
                # sending them (bench/sdk: a third of the gateway's time went to inflating).
                compression=None,
            )
            first = _decoder.decode(await self._ws.recv(decode=False))
        except (OSError, InvalidStatus, InvalidURI, ConnectionClosed, TimeoutError) as exc:
            raise errors.BrokerUnavailable(
                f"cannot connect to the streamport gateway at {self._url}: {exc}"
            ) from exc
        if isinstance(first, Failed):
            await self._ws.close()
            raise _error(first)
        self._failure = None
        self.generation += 1
        self._backoff = RECONNECT_FIRST
        self._reader = asyncio.create_task(self._read(self._ws))

    async def ensure(self) -> None:
        """A live connection: after a loss, connect again (one attempt per backoff period);
        raise the loss (or why connecting failed) when there is none."""
        failure = self._failure
        if failure is None:
            return
        if self._closed or not failure.retriable:
            raise failure
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._failure is None:
                return  # another request reconnected meanwhile
            if time.monotonic() < self._next_attempt:
                raise self._failure
            try:
                await self._connect()
            except errors.StreamportError as exc:
                self._next_attempt = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, RECONNECT_MAX)
                if exc.retriable:
                    self._failure = exc
                raise

    async def aclose(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fail(errors.BrokerClosed("the client is closed"))

    def _fail(self, exc: errors.StreamportError) -> None:
        if self._failure is None or self._failure.retriable:
            self._failure = exc  # a refusal or a close is final; a loss is not
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
        self._waiting.clear()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                reply = _decoder.decode(frame if isinstance(frame, bytes) else frame.encode())
                future = self._waiting.pop(reply.id, None)
                if future is not None and not future.done():
                    future.set_result(reply)
                elif isinstance(reply, Failed):  # about the connection (id 0)
                    self._fail(_error(reply))
        except ConnectionClosed:
            pass
        except msgspec.DecodeError as exc:
            self._fail(errors.BrokerError(f"the gateway sent an invalid frame: {exc}"))
        if ws is self._ws:  # not an old connection ending after a reconnection
            self._fail(
                errors.BrokerUnavailable("the connection to the streamport gateway was lost")
            )

    async def request(self, make: Any) -> Reply:
        """Send ``make(id)`` and wait for its reply; a ``Failed`` reply raises."""
        reply = await (await self._start(make))
        if isinstance(reply, Failed):
            raise _error(reply)
        return reply

    async def _start(self, make: Any) -> asyncio.Future[Reply]:
        """Send ``make(id)`` in a free in-flight slot; the future gets the reply (the slot is
        freed when it settles)."""
        await self.ensure()
        await self._slots.acquire()
        try:
            if self._failure is not None:
                raise self._failure
            assert self._ws is not None
            request_id = next(self._ids)
            request: Request = make(request_id)
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._waiting[request_id] = future
            try:
                await self._ws.send(_encoder.encode(request))
            except ConnectionClosed as exc:
                self._waiting.pop(request_id, None)
                raise errors.BrokerUnavailable(
                    "the connection to the streamport gateway was lost"
                ) from exc
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    async def produce(self, topic: str, records: Sequence[Record]) -> None:
        await (await self.send(topic, records))

    async def send(self, topic: str, records: Sequence[Record]) -> asyncio.Future[None]:
        """Send one ``produce`` frame now; the future settles with its ``acked`` reply.

        The gateway writes produce requests in arrival order, so batches sent one after the
        other keep their order while several wait for their acknowledgement.
        """
        wire = [WireRecord(r.key, r.value, list(r.headers)) for r in records]
        reply = await self._start(lambda i: Produce(i, topic, wire))
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()

        def settle(future: asyncio.Future[Reply]) -> None:
            if acked.done():
                return
            if future.cancelled():
                acked.cancel()
            elif (exc := future.exception()) is not None:
                acked.set_exception(exc)
            elif isinstance(result := future.result(), Failed):
                acked.set_exception(_error(result))
            else:
                assert isinstance(result, Acked)
                acked.set_result(None)

        reply.add_done_callback(settle)
        return acked

    async def subscribe(
        self, topic: str, group: str | None, offset_reset: OffsetReset
    ) -> Subscription:
        reply = await self.request(lambda i: Subscribe(i, topic, group, offset_reset))
        assert isinstance(reply, Subscribed)
        return _NativeSubscription(self, topic, group, offset_reset, reply.sub)


class _NativeSubscription:
    """A subscription of the gateway's, made again after a reconnection (module docstring)."""

    def __init__(
        self,
        transport: NativeTransport,
        topic: str,
        group: str | None,
        offset_reset: OffsetReset,
        sub: int,
    ) -> None:
        self._transport = transport
        self._topic = topic
        self._group = group
        self._reset = offset_reset
        self._sub = sub
        self._generation = transport.generation
        self._positions: dict[int, int] = {}  # partition -> the next offset to read

    async def _current(self) -> int:
        """The subscription's id on the live connection (subscribing again after a new one)."""
        transport = self._transport
        await transport.ensure()
        if self._generation != transport.generation:
            reply = await transport.request(
                lambda i: Subscribe(i, self._topic, self._group, self._reset)
            )
            assert isinstance(reply, Subscribed)
            self._sub, self._generation = reply.sub, transport.generation
            for partition, offset in sorted(self._positions.items()):
                # A partition the group now gives another member refuses: it resumes there.
                with contextlib.suppress(errors.StreamportError):
                    await transport.request(
                        lambda i, p=partition, o=offset: Seek(i, reply.sub, o, p)
                    )
        return self._sub

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumedRecord]:
        timeout_ms = int(timeout * 1000)
        sub = await self._current()
        reply = await self._transport.request(lambda i: Fetch(i, sub, max_records, timeout_ms))
        assert isinstance(reply, Fetched)
        records = [
            ConsumedRecord(
                reply.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp_ms
            )
            for r in reply.records
        ]
        for record in records:
            self._positions[record.partition] = record.offset + 1
        return records

    async def commit(self, offsets: Mapping[int, int] | None = None) -> None:
        pairs = None if offsets is None else sorted(offsets.items())
        sub = await self._current()
        reply = await self._transport.request(lambda i: Commit(i, sub, pairs))
        assert isinstance(reply, Done)

    async def seek(self, offset: SeekTarget, partition: int | None = None) -> None:
        sub = await self._current()
        await self._transport.request(lambda i: Seek(i, sub, offset, partition))
        if isinstance(offset, int) and partition is not None:
            self._positions[partition] = offset
        elif partition is None:
            self._positions.clear()
        else:
            self._positions.pop(partition, None)

    async def aclose(self) -> None:
        if self._generation != self._transport.generation:
            return  # the gateway forgot it with the connection it was made on
        with contextlib.suppress(errors.StreamportError):
            await self._transport.request(lambda i: Unsubscribe(i, self._sub))
