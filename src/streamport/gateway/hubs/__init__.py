"""The Quix Writer and Reader hubs, served over SignalR at ``/writer/hub`` and ``/reader/hub``.

`Hubs` builds both SignalR servers and the process's `FanOut` from the gateway state; the app
mounts ``hubs.routes`` and runs ``hubs.start()`` / ``hubs.aclose()`` in its lifespan.
See ``docs/hubs.md`` for the methods, payloads and the rules (topic names, wildcards, auth).

Example::

    hubs = Hubs(state)
    app = Starlette(routes=[*hubs.routes, ...], lifespan=...)  # start()/aclose() in the lifespan
"""

from __future__ import annotations

import dataclasses

from starlette.routing import BaseRoute

from streamport.errors import Unauthenticated
from streamport.gateway.auth import ANONYMOUS_ADMIN, Principal
from streamport.gateway.cors import origin_policy
from streamport.gateway.hubs._common import TopicNames
from streamport.gateway.hubs._reader import ReaderHub
from streamport.gateway.hubs._writer import WriterHub
from streamport.gateway.signalr import AuthRequest, ServerOptions, SignalRServer
from streamport.gateway.state import GatewayState
from streamport.streams.fanout import FanOut, FanOutOptions

__all__ = ["Hubs", "ReaderHub", "WriterHub"]

WRITER_PATH = "/writer/hub"
READER_PATH = "/reader/hub"
WRITER_PARALLEL_INVOCATIONS = 64
"""Writer hub invocations one connection may have running at once (``writer_parallel``): a client
that pipelines writes gets them batched per stream and acknowledged as they become durable, in
order per stream (see ``_writer.py``). The Reader hub keeps ASP.NET's one at a time."""


class Hubs:
    """Both hubs and the fan-out of one gateway process."""

    def __init__(
        self,
        state: GatewayState,
        *,
        fanout_options: FanOutOptions | None = None,
        server_options: ServerOptions | None = None,
        writer_parallel: int = WRITER_PARALLEL_INVOCATIONS,
    ) -> None:
        self.state = state
        records_out = state.metrics.records_out

        def count_read(topic: str, records: int) -> None:
            records_out.labels(topic).inc(records)

        options = server_options or ServerOptions(
            authenticate=self._authenticate, allow_origin=origin_policy(state.settings)
        )
        broker = state.broker
        self.writer = SignalRServer(
            lambda ctx: WriterHub(ctx, state.writer, TopicNames(broker)),
            dataclasses.replace(options, max_parallel_invocations=writer_parallel),
        )
        queued, writer = self.writer.queued, state.writer

        def writing(topic: str) -> bool:
            """Writes on their way to `topic`'s log: writer hub invocations not started yet (to
            any topic: not known before they run, and they start within a turn or two), and
            writes (any API's) to `topic` joined to a produce that has not returned."""
            return queued.count > 0 or writer.in_flight(topic) > 0

        options_ = fanout_options or FanOutOptions()
        if options_.on_read is None:
            options_ = dataclasses.replace(options_, on_read=count_read)
        if options_.busy is None:
            options_ = dataclasses.replace(options_, busy=writing)
        self.fanout = FanOut(state.broker, options_)
        self.reader = SignalRServer(
            lambda ctx: ReaderHub(ctx, self.fanout, TopicNames(broker)), options
        )

    async def _authenticate(self, request: AuthRequest) -> Principal:
        if not self.state.settings.auth:
            return ANONYMOUS_ADMIN
        if not request.token:
            raise Unauthenticated("missing access token: use accessTokenFactory or access_token")
        return self.state.tokens.authenticate(request.token)

    @property
    def routes(self) -> list[BaseRoute]:
        return [self.writer.route(WRITER_PATH), self.reader.route(READER_PATH)]

    async def start(self) -> None:
        await self.fanout.start()
        await self.writer.start()
        await self.reader.start()

    async def aclose(self) -> None:
        # servers first: their connections' on_disconnected unsubscribe from the fan-out
        await self.reader.aclose()
        await self.writer.aclose()
        await self.fanout.aclose()
