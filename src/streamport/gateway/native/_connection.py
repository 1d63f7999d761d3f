"""One SDK connection: requests in, replies out, consumers owned by the connection.

Tasks of a connection, all in one TaskGroup that ends with the WebSocket:

* the reader decodes frames and routes them: produce requests to the produce queue, the others
  to their subscription's queue;
* the producer takes produce requests in order, joins consecutive ones for the same topic into
  one broker write (the speed is in batching) and answers each once the broker made it durable;
* one task per subscription owns its broker consumer and serves its requests in order, so a
  long-polling fetch delays neither produce nor the other subscriptions;
* the sender writes replies.

Every queue is bounded. When one is full the reader waits, so it stops reading the socket and
TCP pushes back on the client; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from streamport.broker import Consumer, Record, TopicPartition, validate_topic_name
from streamport.errors import StreamportError, ValidationError
from streamport.gateway.auth import Principal
from streamport.gateway.state import GatewayState
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
    WireConsumed,
)

log = logging.getLogger("streamport.gateway.native")

PRODUCE_QUEUE = 64  # produce requests waiting for the broker, per connection
REPLY_QUEUE = 256  # replies waiting for the socket, per connection
SUBSCRIPTION_QUEUE = 16  # requests waiting per subscription (a client has one fetch in flight)
MAX_SUBSCRIPTIONS = 100  # per connection; more is refused with an error reply
MAX_FETCH_RECORDS = 10_000
MAX_FETCH_MS = 30_000
JOIN_RECORDS = 20_000  # at most this many records of queued requests go into one broker write

_msgpack_decoder = msgspec.msgpack.Decoder(Request)
_json_decoder = msgspec.json.Decoder(Request)
_msgpack_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()


def failure(request_id: int, exc: BaseException) -> Failed:
    """The error reply for `exc`, naming the field and whether a retry can help."""
    if isinstance(exc, ValidationError):
        return Failed(request_id, type(exc).__name__, exc.message, exc.field, exc.retriable)
    if isinstance(exc, StreamportError):
        return Failed(request_id, type(exc).__name__, str(exc), None, exc.retriable)
    if isinstance(exc, msgspec.ValidationError):
        return Failed(request_id, "ValidationError", f"invalid request: {exc}")
    log.exception("native protocol: unexpected error in request %d", request_id, exc_info=exc)
    return Failed(request_id, "InternalError", "internal server error (logged)")


class _Subscription:
    def __init__(self, sub: int, topic: str, consumer: Consumer) -> None:
        self.sub = sub
        self.topic = topic
        self.consumer = consumer
        # Full: the reader waits (see the module docstring).
        self.requests: asyncio.Queue[Fetch | Commit | Seek | Unsubscribe] = asyncio.Queue(
            SUBSCRIPTION_QUEUE
        )


class Connection:
    """Serves one accepted WebSocket for `principal` until it closes."""

    def __init__(
        self, websocket: WebSocket, state: GatewayState, principal: Principal, *, json: bool
    ) -> None:
        self._ws = websocket
        self._state = state
        self._principal = principal
        self._json = json
        self._replies: asyncio.Queue[Reply] = asyncio.Queue(REPLY_QUEUE)
        self._produce: asyncio.Queue[Produce] = asyncio.Queue(PRODUCE_QUEUE)
        self._subs: dict[int, _Subscription] = {}
        self._next_sub = 0
        self._tasks: asyncio.TaskGroup | None = None
        self._children: list[asyncio.Task[None]] = []

    async def serve(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                self._children.append(tasks.create_task(self._send_replies()))
                self._children.append(tasks.create_task(self._run_produce()))
                await self._read_requests()
                # The client went away: nothing more to answer, every task of ours stops.
                for task in self._children:
                    task.cancel()
        except* WebSocketDisconnect:
            pass
        finally:
            for sub in list(self._subs.values()):
                await sub.consumer.aclose()
            self._subs.clear()

    async def send(self, reply: Reply) -> None:
        await self._replies.put(reply)

    # -- reading ----------------------------------------------------------------------------

    async def _read_requests(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | None = message.get("bytes")
            text: str | None = message.get("text")
            try:
                if data is not None:
                    request = _msgpack_decoder.decode(data)
                else:
                    request = _json_decoder.decode(text or "")
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await self.send(Failed(0, "ValidationError", f"invalid frame: {exc}"))
                continue
            try:
                await self._route(request)
            except Exception as exc:
                await self.send(failure(request.id, exc))

    async def _route(self, request: Request) -> None:
        if isinstance(request, Produce):
            validate_topic_name(request.topic)
            self._principal.require("write", request.topic)
            await self._produce.put(request)
        elif isinstance(request, Subscribe):
            await self._subscribe(request)
        else:
            sub = self._subs.get(request.sub)
            if sub is None:
                raise ValidationError(
                    f"no subscription {request.sub} on this connection: subscribe first",
                    field="sub",
                )
            await sub.requests.put(request)

    # -- produce ----------------------------------------------------------------------------

    async def _run_produce(self) -> None:
        while True:
            batch = [await self._produce.get()]
            topic = batch[0].topic
            size = len(batch[0].records)
            # Join the requests already waiting for the same topic (order is kept: we stop at
            # the first request for another topic, which starts the next write).
            while not self._produce.empty() and size < JOIN_RECORDS:
                head = self._produce._queue[0]  # type: ignore[attr-defined]
                if head.topic != topic:
                    break
                batch.append(self._produce.get_nowait())
                size += len(head.records)
            await self._write(topic, batch)

    async def _write(self, topic: str, batch: list[Produce]) -> None:
        records = [
            Record(value=r.value, key=r.key, headers=tuple(r.headers))
            for request in batch
            for r in request.records
        ]
        try:
            placed = await self._state.writer.produce(topic, records)
        except Exception as exc:
            for request in batch:
                await self.send(failure(request.id, exc))
            return
        start = 0
        for request in batch:
            end = start + len(request.records)
            await self.send(Acked(request.id, [(m.partition, m.offset) for m in placed[start:end]]))
            start = end

    # -- subscriptions ----------------------------------------------------------------------

    async def _subscribe(self, request: Subscribe) -> None:
        topic = validate_topic_name(request.topic)
        self._principal.require("read", topic)
        if len(self._subs) >= MAX_SUBSCRIPTIONS:
            raise ValidationError(
                f"this connection has {MAX_SUBSCRIPTIONS} subscriptions already: "
                "unsubscribe one or open another connection",
                field="topic",
            )
        await self._state.writer.ensure_topic(topic)
        consumer = self._state.broker.consumer(
            [topic], group=request.group, auto_offset_reset=request.offset_reset
        )
        await consumer.start()
        self._next_sub += 1
        sub = _Subscription(self._next_sub, topic, consumer)
        self._subs[sub.sub] = sub
        if request.group is not None:
            self._state.groups.add((request.group, topic))
        assert self._tasks is not None
        self._children.append(self._tasks.create_task(self._serve_subscription(sub)))
        await self.send(Subscribed(request.id, sub.sub))

    async def _serve_subscription(self, sub: _Subscription) -> None:
        try:
            while True:
                request = await sub.requests.get()
                if isinstance(request, Unsubscribe):
                    self._subs.pop(sub.sub, None)
                    await sub.consumer.aclose()
                    if request.id:
                        await self.send(Done(request.id))
                    return
                try:
                    reply = await self._handle(sub, request)
                except Exception as exc:
                    reply = failure(request.id, exc)
                await self.send(reply)
        finally:
            await sub.consumer.aclose()

    async def _handle(self, sub: _Subscription, request: Fetch | Commit | Seek) -> Reply:
        consumer = sub.consumer
        if isinstance(request, Fetch):
            max_records = min(max(request.max_records, 1), MAX_FETCH_RECORDS)
            timeout = min(max(request.timeout_ms, 0), MAX_FETCH_MS) / 1000
            got = await consumer.fetch(max_records=max_records, timeout=timeout)
            if got:
                self._state.metrics.records_out.labels(sub.topic).inc(len(got))
            records = [
                WireConsumed(
                    r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp_ms
                )
                for r in got
            ]
            return Fetched(request.id, sub.topic, records)
        if isinstance(request, Commit):
            offsets = (
                None
                if request.offsets is None
                else {TopicPartition(sub.topic, p): o for p, o in request.offsets}
            )
            await consumer.commit(offsets)
            return Done(request.id)
        tps = None if request.partition is None else [TopicPartition(sub.topic, request.partition)]
        if request.offset == "beginning":
            await consumer.seek_to_beginning(tps)
        elif request.offset == "end":
            await consumer.seek_to_end(tps)
        else:
            if tps is None:
                raise ValidationError("seek to an offset needs a partition", field="partition")
            await consumer.seek(tps[0], request.offset)
        return Done(request.id)

    # -- writing ----------------------------------------------------------------------------

    async def _send_replies(self) -> None:
        while True:
            reply = await self._replies.get()
            try:
                if self._json:
                    await self._ws.send_text(_json_encoder.encode(reply).decode())
                else:
                    await self._ws.send_bytes(_msgpack_encoder.encode(reply))
            except (RuntimeError, OSError, WebSocketDisconnect):
                return  # the socket closed under us; the reader sees the disconnect
