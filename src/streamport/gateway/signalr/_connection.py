"""One SignalR connection: handshake, the bounded queues in and out, dispatch to the hub, keep-alive.

Transports (``_transports.py``) only move bytes: they call `Connection.receive` with what arrived and
take what to send from `Connection.next_batch` / `Connection.poll`. Everything protocol-level lives here.

Queues, and what happens when they are full:

* outgoing (``outgoing_queue_messages`` / ``outgoing_queue_bytes``): `Connection.enqueue` never waits.
  When full, the queue is dropped and the connection is closed with an error (counted as
  ``OVERFLOW_CLOSE``): a slow client never stalls the code that sends to it, nor grows memory.
* incoming (``incoming_queue_messages``): parsed messages waiting for the one-at-a-time dispatcher.
  When full, the transport's reader waits, which pushes back on the client through TCP.
* client-to-server streams (``stream_buffer_capacity`` items each): the dispatcher waits.
* running invocations (``max_parallel_invocations``, default 1 as in ASP.NET): with 1 the dispatcher
  awaits each invocation before taking the next message. With N > 1 it takes a slot of a semaphore
  of size N, then starts the invocation as a task of the connection's TaskGroup and goes on; the
  tasks start in arrival order (the loop runs new tasks first-in first-out), so a hub method that
  does not suspend before its first side effect performs those effects in arrival order. Their
  completions go out when each finishes. With N running, the dispatcher waits for a slot.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import msgspec

from streamport.errors import StreamportError

from ._framing import RS, MessageTooLarge, ProtocolError
from ._hub import HubError, HubMethod, HubMethods, MethodKind, methods_of
from ._messages import CancelInvocation, Close, Completion, HubMessage, Invocation, StreamItem
from ._options import MetricEvent, ServerOptions, Transport
from ._protocol import (
    HANDSHAKE_OK,
    VOID,
    HubProtocol,
    MessageReader,
    TransferFormat,
    handshake_error,
    parse_handshake,
)
from ._rawsocket import RawSocket, ws_frame

log = logging.getLogger("streamport.gateway.signalr")

CLOSED_WITH_ERROR = "Connection closed with an error."


class ConnectionLost(StreamportError):
    """The transport went away without a Close message (given to ``on_disconnected``)."""


class ClientResultError(StreamportError):
    """`Context.invoke` got no result: the client answered with an error (its text is the
    message), its result did not bind to the expected type, or the connection closed first."""


class ConnectionState(enum.Enum):
    NEGOTIATED = "negotiated"  # negotiate answered, no transport yet
    HANDSHAKING = "handshaking"  # transport open, waiting for the handshake request
    CONNECTED = "connected"
    CLOSED = "closed"


class PreparedMessage:
    """A server-to-client Invocation serialised at most once per hub protocol.

    Build one per broadcast and pass it to `Context.send_prepared` on every receiving connection::

        msg = PreparedMessage("ParameterDataReceived", [payload])
        for ctx in subscribers:
            ctx.send_prepared(msg)
    """

    __slots__ = ("_cache", "_frames", "args", "target")

    def __init__(self, target: str, args: list[Any] | tuple[Any, ...]) -> None:
        self.target = target
        self.args = args
        self._cache: dict[str, bytes] = {}
        self._frames: dict[str, bytes] = {}

    def data_for(self, protocol: HubProtocol) -> bytes:
        data = self._cache.get(protocol.name)
        if data is None:
            data = self._cache[protocol.name] = protocol.invocation(self.target, self.args)
        return data

    def parts_for(self, protocol: HubProtocol, max_bytes: int) -> list[bytes]:
        """The outgoing-queue entries: the one message (never split)."""
        return [self.data_for(protocol)]

    def frame_for(self, protocol: HubProtocol, max_bytes: int) -> bytes:
        """`data_for` as one WebSocket frame, built once per protocol (see ``_rawsocket.py``)."""
        frame = self._frames.get(protocol.name)
        if frame is None:
            binary = protocol.transfer_format is TransferFormat.BINARY
            frame = self._frames[protocol.name] = ws_frame(self.data_for(protocol), binary)
        return frame


class PreparedBatch:
    """Several `PreparedMessage` for the same receivers, joined once per hub protocol.

    `Context.send_batch` queues the joined bytes as ONE outgoing-queue entry (one wake-up of the
    connection's writer, one frame) when they fit in ``max_batch_bytes``, else as a few entries of
    up to that size, cut between messages; the messages stay complete and in order. The queue's
    byte bound applies to the whole batch; its message bound counts the entries.
    """

    __slots__ = ("_cache", "_frames", "_parts", "messages")

    def __init__(self, messages: list[PreparedMessage]) -> None:
        self.messages = messages
        self._cache: dict[str, bytes] = {}
        self._parts: dict[tuple[str, int], list[bytes]] = {}
        self._frames: dict[tuple[str, int], bytes] = {}

    def parts_for(self, protocol: HubProtocol, max_bytes: int) -> list[bytes]:
        """The joined messages in pieces of at most `max_bytes` (a larger message alone), cut
        between messages; built once per protocol."""
        key = (protocol.name, max_bytes)
        parts = self._parts.get(key)
        if parts is None:
            whole = self.data_for(protocol)
            if len(whole) <= max_bytes:
                parts = [whole]
            else:
                parts = []
                group: list[bytes] = []
                size = 0
                for m in self.messages:
                    data = m.data_for(protocol)
                    if group and size + len(data) > max_bytes:
                        parts.append(b"".join(group))
                        group, size = [], 0
                    group.append(data)
                    size += len(data)
                parts.append(b"".join(group))
            self._parts[key] = parts
        return parts

    def frame_for(self, protocol: HubProtocol, max_bytes: int) -> bytes:
        """`parts_for` as WebSocket frames (one per part, back to back), built once per protocol."""
        key = (protocol.name, max_bytes)
        frames = self._frames.get(key)
        if frames is None:
            binary = protocol.transfer_format is TransferFormat.BINARY
            parts = self.parts_for(protocol, max_bytes)
            frames = self._frames[key] = b"".join(ws_frame(part, binary) for part in parts)
        return frames

    def data_for(self, protocol: HubProtocol) -> bytes:
        data = self._cache.get(protocol.name)
        if data is None:
            data = self._cache[protocol.name] = b"".join(
                m.data_for(protocol) for m in self.messages
            )
        return data


class Context:
    """The hub's view of its connection (ASP.NET ``HubCallerContext`` + ``Clients.Caller``).

    ``items`` is free per-connection storage. ``headers`` and ``query`` come from the request that opened
    the transport. All methods must be called on the server's event loop; none of them waits.
    """

    __slots__ = ("_conn", "items")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.items: dict[str, Any] = {}

    @property
    def connection_id(self) -> str:
        return self._conn.connection_id

    @property
    def principal(self) -> object:
        """What the server's `authenticate` callback returned (None without one)."""
        return self._conn.principal

    @property
    def transport(self) -> Transport | None:
        return self._conn.transport

    @property
    def protocol(self) -> str:
        return self._conn.protocol.name if self._conn.protocol else ""

    @property
    def headers(self) -> Mapping[str, str]:
        return self._conn.headers

    @property
    def query(self) -> Mapping[str, str]:
        return self._conn.query

    @property
    def closed(self) -> bool:
        return self._conn.state is ConnectionState.CLOSED

    def send(self, target: str, *args: Any) -> bool:
        """Push ``target(*args)`` to this client. False if it is closed (or was just closed for overflow)."""
        protocol = self._conn.protocol
        if protocol is None or self._conn.state is not ConnectionState.CONNECTED:
            return False
        return self._conn.enqueue(protocol.invocation(target, args))

    def send_prepared(self, message: PreparedMessage) -> bool:
        """Like `send`, reusing the bytes already serialised for this protocol (broadcasts)."""
        protocol = self._conn.protocol
        if protocol is None or self._conn.state is not ConnectionState.CONNECTED:
            return False
        return self._conn.enqueue_prepared(message)

    def send_batch(self, batch: PreparedBatch) -> bool:
        """Queue several prepared messages at once (see `PreparedBatch`). On Long Polling each
        message is queued on its own (a poll may have to answer with a single message)."""
        conn = self._conn
        protocol = conn.protocol
        if protocol is None or conn.state is not ConnectionState.CONNECTED:
            return False
        if conn.transport is Transport.LONG_POLLING:
            return all(conn.enqueue(m.data_for(protocol)) for m in batch.messages)
        return conn.enqueue_prepared(batch)

    def abort(self) -> None:
        """Close the connection; the client is told not to reconnect (``allowReconnect`` absent)."""
        self._conn.close(allow_reconnect=False)

    async def invoke(
        self, target: str, *args: Any, result_type: Any = Any, timeout: float | None = None
    ) -> Any:
        """Invoke ``target(*args)`` on this client and return its result, decoded into
        `result_type` (ASP.NET's ``Clients.Caller.InvokeAsync``; "client results", §12).

        Raises `ClientResultError` when the client answers with an error (JS: a handler that
        throws, or none registered: ``Client didn't provide a result.``), when the result does
        not bind, or when the connection closes first; ``TimeoutError`` after `timeout` seconds.
        Some clients never answer (signalrcore): always give those a timeout. Safe to await from
        a hub method, whatever ``max_parallel_invocations``: the answer is settled as soon as it
        is read, not queued behind the connection's invocations.
        """
        return await self._conn.invoke_client(target, args, result_type, timeout)


class _Inbox:
    """A small bounded FIFO with a close; cheaper than asyncio.Queue plus a second wake-up source."""

    __slots__ = ("_closed", "_items", "_limit", "_not_empty", "_not_full", "on_room")

    def __init__(self, limit: int) -> None:
        self._items: collections.deque[HubMessage] = collections.deque()
        self._limit = limit
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._closed = False
        self.on_room: Callable[[], None] | None = None  # called when `get` makes room again

    def full(self) -> bool:
        return len(self._items) >= self._limit

    def push(self, item: HubMessage) -> None:
        """Add without waiting (the raw WebSocket reader; it stops reading once `full`)."""
        if self._closed:
            return
        self._items.append(item)
        self._not_empty.set()

    async def put(self, item: HubMessage) -> None:
        while len(self._items) >= self._limit and not self._closed:
            self._not_full.clear()
            await self._not_full.wait()
        if self._closed:
            return
        self._items.append(item)
        self._not_empty.set()

    async def get(self) -> HubMessage | None:
        while not self._items:
            if self._closed:
                return None
            self._not_empty.clear()
            await self._not_empty.wait()
        item = self._items.popleft()
        self._not_full.set()
        if self.on_room is not None and len(self._items) == self._limit - 1:
            self.on_room()
        return item

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._not_empty.set()
        self._not_full.set()


class Queued:
    """How many invocations the connections of one server received whose hub method has not
    started yet (in the incoming queue, or dispatched and about to start). One integer kept by
    the connections, cheap to read: the fan-out reads the writer hub's, with the `Writer`'s
    produces under way, to tell writes still on their way to the log from a quiet moment
    (``Hubs``)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class _END:
    pass


class _Upload:
    """A client-to-server stream: the hub method iterates it while StreamItems arrive."""

    def __init__(self, item_type: Any, capacity: int) -> None:
        self.item_type = item_type
        self.queue: asyncio.Queue[Any] = asyncio.Queue(capacity)  # full: the dispatcher waits
        self.error: str | None = None

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            item = await self.queue.get()
            if item is _END:
                if self.error is not None:
                    raise HubError(self.error)
                return
            yield item


class Connection:
    """Internal: one connection's state. Hubs see it through `Context`."""

    def __init__(
        self,
        connection_id: str,
        token: str,
        principal: object,
        options: ServerOptions,
        protocols: dict[str, HubProtocol],
        hub_factory: Callable[[Context], object],
        queued: Queued | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.token = token
        self.principal = principal
        self.options = options
        self._protocols = protocols
        self._hub_factory = hub_factory
        self._metrics = options.metrics
        self.state = ConnectionState.NEGOTIATED
        self.transport: Transport | None = None
        self.protocol: HubProtocol | None = None
        self.headers: Mapping[str, str] = {}
        self.query: Mapping[str, str] = {}
        self.context = Context(self)
        now = time.monotonic()
        self.created = now
        self.last_received = now
        self.last_sent = now
        self.transport_started = now
        # transport activity, for expiry: active requests (WebSocket, SSE stream, pending poll)
        self.active_requests = 0
        self.idle_since = now
        self.poll_generation = 0

        self._handshake_buffer = bytearray()
        self._reader: MessageReader | None = None
        self._outbox: collections.deque[bytes] = collections.deque()
        self._outbox_bytes = 0
        self._wake = asyncio.Event()  # set when the outbox got data or the connection closed
        self._room = asyncio.Event()  # set when a writer drained the outbox
        self._inbox = _Inbox(options.incoming_queue_messages)
        self._handshaken = asyncio.Event()
        self.closed_event = asyncio.Event()
        self._disconnect_error: BaseException | None = None
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._cancelled_streams: set[str] = set()
        self._uploads: dict[str, _Upload] = {}
        # client results (`Context.invoke`): our invocation id -> (the waiting future, the type)
        self._results: dict[str, tuple[asyncio.Future[Any], Any]] = {}
        self._result_ids = itertools.count(1)
        self._tasks: asyncio.TaskGroup | None = None
        self._methods: HubMethods | None = None
        self._hub: object = None
        parallel = options.max_parallel_invocations
        self._slots = asyncio.Semaphore(parallel) if parallel > 1 else None
        self._queued = queued or Queued()
        self._received = 0  # this connection's share of `_queued`
        # WebSockets with a RawSocket (see _rawsocket.py): frames are written straight to the
        # socket; what is queued goes out at the end of the loop turn (one frame for all of it)
        self._raw: RawSocket | None = None
        self._flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- transport side ---------------------------------------------------------------------------------
    def start_transport(
        self, transport: Transport, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> None:
        self.transport = transport
        self.headers = headers
        self.query = query
        # a POST before the first poll (signalrcore) may have completed the handshake already
        if self.state is ConnectionState.NEGOTIATED:
            self.state = ConnectionState.HANDSHAKING
        now = time.monotonic()
        self.transport_started = now
        self.last_received = now

    def attach_raw(self, raw: RawSocket) -> None:
        """Write this WebSocket's frames with `raw`, and take what arrives straight from it (call
        before the socket is accepted)."""
        self._raw = raw
        self._loop = asyncio.get_running_loop()
        self._inbox.on_room = raw.resume_reading
        raw.receive_into(self.receive_nowait)

    @property
    def finished(self) -> bool:
        """Closed, and everything that was to be sent is taken."""
        return self.state is ConnectionState.CLOSED and not self._outbox

    def formats(self) -> frozenset[TransferFormat]:
        if self.transport is Transport.SERVER_SENT_EVENTS:
            return frozenset({TransferFormat.TEXT})
        return frozenset(TransferFormat)

    async def receive(self, data: bytes) -> None:
        """Bytes from the client, in whatever pieces the transport got them."""
        for msg in self._parse(data):
            await self._inbox.put(msg)

    def receive_nowait(self, data: bytes) -> bool:
        """`receive` for a raw WebSocket (called from the socket's protocol): the messages go into
        the incoming queue at once. False when the queue is full: the caller stops reading the
        socket until `on_room` (set by the transport) is called. The queue then holds at most its
        limit plus the messages of one socket read."""
        inbox = self._inbox
        for msg in self._parse(data):
            inbox.push(msg)
        return not inbox.full()

    def _parse(self, data: bytes) -> list[HubMessage]:
        """The messages in `data` the dispatcher must see; handles the rest (handshake, pings,
        cancellation, close, bad input) on the spot."""
        if self.state is ConnectionState.CLOSED:
            return []
        self.last_received = time.monotonic()
        try:
            if self._reader is None:
                rest = self._handshake(data)
                if rest is None or self._reader is None:
                    return []
                data = rest
            messages = self._reader.feed(data)
        except MessageTooLarge as exc:
            self._metrics.count(MetricEvent.MESSAGE_TOO_LARGE)
            self.close(self._error_text(CLOSED_WITH_ERROR, "InvalidDataException", exc.message))
            return []
        except ProtocolError as exc:
            self._metrics.count(MetricEvent.BAD_FRAME)
            log.info("connection %s: bad message: %s", self.connection_id, exc.message)
            self.close(self._error_text(CLOSED_WITH_ERROR, "InvalidDataException", exc.message))
            return []
        out: list[HubMessage] = []
        for msg in messages:
            if isinstance(msg, Invocation):
                out.append(msg)
                self._received += 1
                self._queued.count += 1
            elif isinstance(msg, Completion) and msg.invocation_id in self._results:
                # a client result: settled here, not behind the invocations in the inbox (the
                # hub method waiting for it may be the one that holds the inbox up)
                self._settle_result(msg)
            elif isinstance(msg, StreamItem | Completion):
                out.append(msg)
            elif isinstance(msg, CancelInvocation):
                self._cancel_stream(msg.invocation_id)
            elif isinstance(msg, Close):
                # the client leaves gracefully: nothing more is sent, on_disconnected gets no error
                self.close(send_close=False)
                return []
            # Ping: nothing to do; Ack / Sequence only matter with stateful reconnect, which
            # this server does not offer
        return out

    def _handshake(self, data: bytes) -> bytes | None:
        buf = self._handshake_buffer
        buf += data
        end = buf.find(RS)
        if end < 0:
            limit = self.options.max_message_size
            if limit is not None and len(buf) > limit:
                self._metrics.count(MetricEvent.HANDSHAKE_FAILED)
                self.close("Handshake was canceled.")
            return None
        record = bytes(buf[:end])
        rest = bytes(buf[end + 1 :])
        buf.clear()
        try:
            protocol = parse_handshake(record, self._protocols, self.formats())
        except ProtocolError as exc:
            self._metrics.count(MetricEvent.HANDSHAKE_FAILED)
            self.close(exc.message)
            return None
        self.protocol = protocol
        self._reader = protocol.reader(self.options.max_message_size)
        self._push(HANDSHAKE_OK)
        self.state = ConnectionState.CONNECTED
        self._handshaken.set()
        return rest

    def enqueue(self, data: bytes) -> bool:
        """Queue one complete message for sending; never waits. False if closed or just overflowed."""
        if self.state is ConnectionState.CLOSED:
            return False
        opts = self.options
        if (
            len(self._outbox) >= opts.outgoing_queue_messages
            or self._outbox_bytes + len(data) > opts.outgoing_queue_bytes
        ):
            self._overflow()
            return False
        self._push(data)
        return True

    def enqueue_prepared(self, prepared: PreparedMessage | PreparedBatch) -> bool:
        """`enqueue` for a broadcast: on a raw WebSocket with nothing queued and room in the socket
        buffer, the prepared frame (built once for every receiver) is written at once."""
        protocol = self.protocol
        if self.state is ConnectionState.CLOSED or protocol is None:
            return False
        max_bytes = self.options.max_batch_bytes
        raw = self._raw
        if raw is not None and not self._outbox and raw.writable():
            frame = prepared.frame_for(protocol, max_bytes)
            if len(frame) <= self.options.outgoing_queue_bytes and raw.write(frame):
                self.last_sent = time.monotonic()
                return True
        return all(self.enqueue(part) for part in prepared.parts_for(protocol, max_bytes))

    def _push(self, data: bytes) -> None:
        self._outbox.append(data)
        self._outbox_bytes += len(data)
        if self._raw is None:
            self._wake.set()
        elif not self._flush_pending:
            assert self._loop is not None
            self._flush_pending = True
            self._loop.call_soon(self._flush_raw)

    def _flush_raw(self) -> None:
        """Raw WebSocket: write what is queued, as few frames as `max_batch_bytes` allows. When the
        socket buffer is full, the transport's writer task (`drain_raw`) takes over."""
        self._flush_pending = False
        raw = self._raw
        assert raw is not None
        protocol = self.protocol
        binary = protocol is not None and protocol.transfer_format is TransferFormat.BINARY
        while self._outbox:
            if not raw.writable():
                self._wake.set()
                return
            data = self._take(self.options.max_batch_bytes, single=False)
            if not raw.write(ws_frame(data, binary)):
                self._outbox.clear()  # the socket is closing: the reader sees the disconnect
                self._outbox_bytes = 0
                return
            self.last_sent = time.monotonic()

    async def drain_raw(self) -> None:
        """The writer task of a raw WebSocket: sends what waited for room in the socket buffer;
        returns once the connection is closed and everything queued is written."""
        raw = self._raw
        assert raw is not None
        while True:
            if self._outbox:
                if raw.writable():
                    self._flush_raw()
                else:
                    await raw.wait_writable()
                continue
            if self.state is ConnectionState.CLOSED:
                return
            self._wake.clear()
            await self._wake.wait()

    def _overflow(self) -> None:
        self._metrics.count(MetricEvent.OVERFLOW_CLOSE)
        log.warning(
            "connection %s: outgoing queue full (%d messages, %d bytes): closing a client that "
            "does not keep up",
            self.connection_id,
            len(self._outbox),
            self._outbox_bytes,
        )
        self._outbox.clear()
        self._outbox_bytes = 0
        self.close(
            f"{CLOSED_WITH_ERROR} The client did not read messages fast enough "
            "and its outgoing queue overflowed."
        )

    def _take(self, max_bytes: int, single: bool) -> bytes:
        out = self._outbox
        first = out.popleft()
        size = len(first)
        if single or not out or size >= max_bytes:
            self._outbox_bytes -= size
            self._room.set()
            return first
        parts = [first]
        while out and size + len(out[0]) <= max_bytes:
            part = out.popleft()
            parts.append(part)
            size += len(part)
        self._outbox_bytes -= size
        self._room.set()
        return b"".join(parts)

    async def next_batch(self) -> bytes | None:
        """The next complete message(s) to send, or None when the connection is done."""
        while not self._outbox:
            if self.state is ConnectionState.CLOSED:
                return None
            self._wake.clear()
            await self._wake.wait()
        self.last_sent = time.monotonic()
        return self._take(self.options.max_batch_bytes, single=False)

    async def poll(self, timeout: float, single: bool) -> bytes | None:
        """Long polling: data, ``b""`` after ``timeout``, None once closed or taken over by a newer poll."""
        self.poll_generation += 1
        generation = self.poll_generation
        self._wake.set()  # a pending older poll sees the new generation and answers 204
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self.poll_generation:
                return None
            if self._outbox:
                self.last_sent = time.monotonic()
                return self._take(self.options.max_batch_bytes, single)
            if self.state is ConnectionState.CLOSED:
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                return b""
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return b""

    def close(
        self,
        error: str | None = None,
        *,
        allow_reconnect: bool = True,
        send_close: bool = True,
        exc: BaseException | None = None,
    ) -> None:
        """Close once: queue the Close message (or handshake error) behind what is queued, then stop."""
        if self.state is ConnectionState.CLOSED:
            return
        if send_close:
            if self.protocol is not None and self.state is ConnectionState.CONNECTED:
                self._push(self.protocol.close(error, allow_reconnect))
            elif self.state is ConnectionState.HANDSHAKING and error is not None:
                self._push(handshake_error(error))
        else:
            self._outbox.clear()
            self._outbox_bytes = 0
        if exc is not None:
            self._disconnect_error = exc
        elif error is not None:
            self._disconnect_error = ConnectionLost(error)
        self.state = ConnectionState.CLOSED
        self._inbox.close()
        for task in self._streams.values():
            task.cancel()
        results, self._results = self._results, {}
        for future, _ in results.values():
            if not future.done():
                future.set_exception(
                    ClientResultError("The connection closed before the client answered.")
                )
        self._wake.set()
        self._room.set()
        self._handshaken.set()
        self.closed_event.set()

    def transport_lost(self) -> None:
        """The transport ended without a Close message from the client."""
        self.close(
            send_close=False, exc=ConnectionLost("the transport closed without a Close message")
        )

    def check_timers(self, now: float) -> None:
        """Handshake timeout, keep-alive Ping and client timeout; the server calls it periodically
        for every connection (one timer loop for all instead of one task per connection)."""
        opts = self.options
        if self.state is ConnectionState.HANDSHAKING:
            if now - self.transport_started >= opts.handshake_timeout:
                self._metrics.count(MetricEvent.HANDSHAKE_TIMEOUT)
                self.close("Handshake was canceled.")
        elif (
            self.state is ConnectionState.CONNECTED
            and self.transport is not None
            and self.transport is not Transport.LONG_POLLING  # polls are the keep-alive there
        ):
            if now - self.last_received >= opts.client_timeout:
                self._metrics.count(MetricEvent.CLIENT_TIMEOUT)
                log.info("connection %s: client timeout", self.connection_id)
                self.close()
            elif now - self.last_sent >= opts.keep_alive_interval and self.protocol:
                self.last_sent = now
                self.enqueue(self.protocol.ping())

    # -- the connection's own tasks -----------------------------------------------------------------------
    async def run(self) -> None:
        """The connection's lifetime: the hub and its streams. Returns once closed."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                try:
                    await self._serve_hub()
                finally:
                    for task in self._streams.values():
                        task.cancel()
        except Exception:  # never let one connection take the server's task group down
            log.exception("connection %s failed", self.connection_id)
            self.close(CLOSED_WITH_ERROR)
        finally:
            # what was still queued when the connection closed never starts
            self._queued.count -= self._received
            self._received = 0

    def _started(self) -> None:
        if self._received:
            self._received -= 1
            self._queued.count -= 1

    async def _serve_hub(self) -> None:
        await self._handshaken.wait()
        if self.state is not ConnectionState.CONNECTED:
            return
        try:
            hub = self._hub_factory(self.context)
            self._methods = methods_of(type(hub))
            self._hub = hub
            on_connected = getattr(hub, "on_connected", None)
            if on_connected is not None:
                await on_connected()
        except Exception as exc:
            log.exception("connection %s: hub failed to start", self.connection_id)
            self._metrics.count(MetricEvent.UNEXPECTED_ERROR)
            self.close(self._error_text(CLOSED_WITH_ERROR, type(exc).__name__, str(exc)))
            return
        self._metrics.count(MetricEvent.CONNECTED)
        try:
            while True:
                msg = await self._inbox.get()
                if msg is None:
                    break
                if isinstance(msg, Invocation):
                    if not await self._on_invocation(msg):
                        self._started()  # answered at once (an error), or a stream
                elif isinstance(msg, StreamItem):
                    await self._on_stream_item(msg)
                elif isinstance(msg, Completion):
                    await self._on_completion(msg)
        finally:
            for upload in self._uploads.values():
                # wake a hub method still reading a client stream; it gets an error, not a hang
                upload.error = "The connection closed."
                if upload.queue.full():
                    upload.queue.get_nowait()
                upload.queue.put_nowait(_END)
            self._metrics.count(MetricEvent.DISCONNECTED)
            on_disconnected = getattr(hub, "on_disconnected", None)
            if on_disconnected is not None:
                try:
                    await on_disconnected(self._disconnect_error)
                except Exception:
                    log.exception("connection %s: on_disconnected failed", self.connection_id)
                    self._metrics.count(MetricEvent.UNEXPECTED_ERROR)

    # -- invocations ------------------------------------------------------------------------------------
    def _error_text(self, base: str, type_name: str, message: str) -> str:
        if self.options.detailed_errors:
            return f"{base} {type_name}: {message}"
        return base

    def _reply_error(self, invocation_id: str | None, error: str) -> None:
        if invocation_id is not None and self.protocol is not None:
            self.enqueue(self.protocol.completion(invocation_id, error=error))

    async def _on_invocation(self, msg: Invocation) -> bool:
        """Answer `msg` (an error), or start it. True when it went to `_invoke`."""
        assert self._methods is not None and self.protocol is not None
        target = msg.target
        method = self._methods.find(target)
        if method is None:
            self._metrics.count(MetricEvent.UNKNOWN_METHOD)
            self._reply_error(msg.invocation_id, f"Unknown hub method '{target}'")
            return False
        if msg.streaming and method.kind != MethodKind.STREAM:
            self._metrics.count(MetricEvent.BINDING_ERROR)
            self._reply_error(
                msg.invocation_id,
                f"The client attempted to invoke the non-streaming '{target}' method with a "
                "streaming invocation.",
            )
            return False
        if not msg.streaming and method.kind == MethodKind.STREAM:
            self._metrics.count(MetricEvent.BINDING_ERROR)
            self._reply_error(
                msg.invocation_id,
                f"The client attempted to invoke the streaming '{target}' method with a "
                "non-streaming invocation.",
            )
            return False
        if len(msg.stream_ids) != method.stream_params:
            self._metrics.count(MetricEvent.BINDING_ERROR)
            self._reply_error(
                msg.invocation_id,
                f"Client sent {len(msg.stream_ids)} stream(s), Hub method expects "
                f"{method.stream_params}.",
            )
            return False
        if msg.invocation_id is not None and msg.invocation_id in self._streams:
            self._reply_error(
                msg.invocation_id, f"Invocation ID '{msg.invocation_id}' is already in use."
            )
            return False
        args = self._bind(method, msg)
        if args is None:
            return False
        func = getattr(self._hub, method.attr)
        if method.kind == MethodKind.STREAM:
            assert msg.invocation_id is not None and self._tasks is not None
            self._streams[msg.invocation_id] = self._tasks.create_task(
                self._run_stream(msg.invocation_id, target, func(*args))
            )
        elif method.stream_params:
            # methods that read client streams run beside the dispatcher, which feeds them the items
            assert self._tasks is not None
            self._tasks.create_task(self._invoke(method, msg, func, args))
            return True
        elif self._slots is not None:
            assert self._tasks is not None
            await self._slots.acquire()  # N running: wait here (backpressure on the client)
            self._tasks.create_task(self._invoke_in_slot(method, msg, func, args))
            return True
        else:
            await self._invoke(method, msg, func, args)
            return True
        return False

    async def _invoke_in_slot(
        self, method: HubMethod, msg: Invocation, func: Any, args: list[Any]
    ) -> None:
        assert self._slots is not None
        try:
            await self._invoke(method, msg, func, args)
        finally:
            self._slots.release()

    def _bind(self, method: HubMethod, msg: Invocation) -> list[Any] | None:
        assert self.protocol is not None
        expected = len(method.params) - method.stream_params
        if not expected - method.optional <= len(msg.arguments) <= expected:
            self._metrics.count(MetricEvent.BINDING_ERROR)
            self._reply_error(
                msg.invocation_id,
                self._error_text(
                    f"Failed to invoke '{msg.target}' due to an error on the server.",
                    "InvalidDataException",
                    f"Invocation provides {len(msg.arguments)} argument(s) but target expects "
                    f"{expected}.",
                ),
            )
            return None
        args: list[Any] = []
        raw_args = iter(msg.arguments)
        stream_ids = iter(msg.stream_ids)
        decode = self.protocol.decode_value
        try:
            for type_, is_stream in method.params:
                if is_stream:
                    upload = _Upload(type_, self.options.stream_buffer_capacity)
                    self._uploads[next(stream_ids)] = upload
                    args.append(upload.__aiter__())
                else:
                    raw = next(raw_args, None)
                    if raw is None:
                        break  # the rest have defaults (HubMethod.optional)
                    args.append(decode(raw, type_))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self._metrics.count(MetricEvent.BINDING_ERROR)
            self._reply_error(
                msg.invocation_id,
                self._error_text(
                    f"Failed to invoke '{msg.target}' due to an error on the server.",
                    "InvalidDataException",
                    f"Error binding arguments. Make sure that the types of the provided values "
                    f"match the types of the hub method being invoked. {exc}",
                ),
            )
            return None
        return args

    async def _invoke(self, method: HubMethod, msg: Invocation, func: Any, args: list[Any]) -> None:
        assert self.protocol is not None
        target = msg.target
        self._started()
        try:
            result = await func(*args)
        except HubError as exc:
            self._metrics.count(MetricEvent.HUB_ERROR)
            self._reply_error(
                msg.invocation_id,
                f"An unexpected error occurred invoking '{target}' on the server. "
                f"HubException: {exc.message}",
            )
            return
        except Exception as exc:
            self._metrics.count(MetricEvent.UNEXPECTED_ERROR)
            log.exception("connection %s: hub method %s failed", self.connection_id, method.name)
            self._reply_error(
                msg.invocation_id,
                self._error_text(
                    f"An unexpected error occurred invoking '{target}' on the server.",
                    type(exc).__name__,
                    str(exc),
                ),
            )
            return
        if msg.invocation_id is None:
            return
        try:
            data = self.protocol.completion(
                msg.invocation_id, result=result if method.returns_value else VOID
            )
        except (TypeError, msgspec.EncodeError) as exc:
            self._metrics.count(MetricEvent.UNEXPECTED_ERROR)
            log.error(
                "connection %s: result of %s not serialisable: %s", self.connection_id, target, exc
            )
            self._reply_error(
                msg.invocation_id,
                self._error_text(
                    f"An unexpected error occurred invoking '{target}' on the server.",
                    type(exc).__name__,
                    str(exc),
                ),
            )
            return
        self.enqueue(data)

    async def _run_stream(self, invocation_id: str, target: str, items: AsyncIterator[Any]) -> None:
        assert self.protocol is not None
        protocol = self.protocol
        error: str | None = None
        try:
            async for item in items:
                if not self.enqueue(protocol.stream_item(invocation_id, item)):
                    return
                # a fast producer waits for the writer instead of overflowing the queue
                while (
                    len(self._outbox) > self.options.outgoing_queue_messages // 2
                    and self.state is not ConnectionState.CLOSED
                ):
                    self._room.clear()
                    await self._room.wait()
        except asyncio.CancelledError:
            if invocation_id not in self._cancelled_streams:
                raise
        except HubError as exc:
            self._metrics.count(MetricEvent.HUB_ERROR)
            error = (
                "An error occurred on the server while streaming results. "
                f"HubException: {exc.message}"
            )
        except Exception as exc:
            self._metrics.count(MetricEvent.UNEXPECTED_ERROR)
            log.exception("connection %s: stream %s failed", self.connection_id, target)
            error = self._error_text(
                "An error occurred on the server while streaming results.",
                type(exc).__name__,
                str(exc),
            )
        finally:
            self._streams.pop(invocation_id, None)
            self._cancelled_streams.discard(invocation_id)
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        self.enqueue(protocol.completion(invocation_id, error=error))

    def _cancel_stream(self, invocation_id: str) -> None:
        task = self._streams.get(invocation_id)
        if task is not None:
            self._cancelled_streams.add(invocation_id)
            task.cancel()

    async def _on_stream_item(self, msg: StreamItem) -> None:
        upload = self._uploads.get(msg.invocation_id)
        if upload is None:
            return  # ASP.NET ignores items of unknown streams
        assert self.protocol is not None
        try:
            item = self.protocol.decode_value(msg.item, upload.item_type)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self._metrics.count(MetricEvent.BINDING_ERROR)
            upload.error = f"Error binding a stream item: {exc}"
            del self._uploads[msg.invocation_id]
            await upload.queue.put(_END)
            return
        await upload.queue.put(item)

    async def _on_completion(self, msg: Completion) -> None:
        upload = self._uploads.pop(msg.invocation_id, None)
        if upload is None:
            return  # unknown ids are ignored (ASP.NET); client results never come this way
        upload.error = msg.error
        await upload.queue.put(_END)

    def _settle_result(self, msg: Completion) -> None:
        """The client's answer to `invoke_client`."""
        waiting = self._results.pop(msg.invocation_id, None)
        if waiting is None:
            return
        future, result_type = waiting
        if future.done():  # the caller gave up (timeout, cancelled)
            return
        if msg.error is not None:
            future.set_exception(ClientResultError(msg.error))
        elif not len(msg.result):  # a void Completion
            future.set_result(None)
        else:
            assert self.protocol is not None
            try:
                future.set_result(self.protocol.decode_value(msg.result, result_type))
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                self._metrics.count(MetricEvent.BINDING_ERROR)
                future.set_exception(ClientResultError(f"Error binding the client's result: {exc}"))

    async def invoke_client(
        self, target: str, args: tuple[Any, ...], result_type: Any, timeout: float | None
    ) -> Any:
        """Invoke ``target(*args)`` on the client and wait for its result (see `Context.invoke`)."""
        protocol = self.protocol
        if protocol is None or self.state is not ConnectionState.CONNECTED:
            raise ClientResultError("The connection is not open.")
        # not the shape of the official clients' stream ids (numbers, uuid4)
        invocation_id = f"r{next(self._result_ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[invocation_id] = (future, result_type)
        try:
            if not self.enqueue(protocol.invocation(target, args, invocation_id)):
                raise ClientResultError("The connection is not open.")
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._results.pop(invocation_id, None)
