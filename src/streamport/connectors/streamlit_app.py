"""The data layer of the Streamlit dashboard template (``templates/streamlit/app.py``).

`LiveTopic` subscribes to a topic's parameters on the Reader hub (SignalR JSON protocol over a
WebSocket: negotiate, handshake, ``SubscribeToParameter``) and keeps the latest points in a
bounded buffer; `LiveTopic.frame` hands them to the page as a pandas DataFrame. Streamlit re-runs
the page script on every refresh, so the connection lives on a thread of its own (one event loop,
started by `start()`, stopped by `close()`), shared across re-runs with ``st.cache_resource``.

Example::

    live = LiveTopic("http://127.0.0.1:8080", token, "cars", parameters=["speed"])
    live.start()
    frame = live.frame()      # columns: time, stream, parameter, value
    live.close()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import itertools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
import websockets

from streamport.errors import ConnectorError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("streamport.connectors.streamlit")

RS = "\x1e"  # SignalR's record separator
PING_INTERVAL = 10.0  # the hub closes clients silent for 30 s


class LiveState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Point:
    time_ns: int
    stream: str
    parameter: str
    value: float


class LiveTopic:
    """The latest `max_points` numeric points of `parameters` (``*`` = all) on `topic`."""

    def __init__(
        self,
        url: str,
        token: str | None,
        topic: str,
        *,
        parameters: Sequence[str] = ("*",),
        stream: str = "*",
        max_points: int = 10_000,
        retry_max: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.topic = topic
        self.parameters = list(parameters)
        self.stream = stream
        self.state = LiveState.NEW
        self.last_error: str | None = None
        self.received = 0
        self._token = token
        self._retry_max = retry_max
        # Oldest points fall out when full: a dashboard shows the recent window.
        self._points: collections.deque[Point] = collections.deque(maxlen=max_points)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # --- the page's side (any thread) ----------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._thread_main, name=f"streamport-live-{self.topic}", daemon=True
        )
        self._thread.start()

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until subscribed (True) or `timeout` seconds passed (False)."""
        return self._subscribed.wait(timeout)

    def points(self) -> list[Point]:
        with self._lock:
            return list(self._points)

    def frame(self) -> pd.DataFrame:
        """The buffered points: columns ``time`` (UTC), ``stream``, ``parameter``, ``value``."""
        import pandas as pd

        points = self.points()
        frame = pd.DataFrame(
            {
                "time": pd.to_datetime([p.time_ns for p in points], unit="ns", utc=True),
                "stream": [p.stream for p in points],
                "parameter": [p.parameter for p in points],
                "value": [p.value for p in points],
            }
        )
        return frame.sort_values("time", kind="stable", ignore_index=True)

    def close(self, timeout: float = 10.0) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout)
        self.state = LiveState.CLOSED

    # --- the connection's thread ---------------------------------------------------------

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        attempt = 0
        while not self._stop.is_set():
            self.state = LiveState.CONNECTING
            try:
                await self._session()
                attempt = 0
            except (OSError, httpx.HTTPError, websockets.WebSocketException, ConnectorError) as exc:
                self.last_error = str(exc)
                log.warning("Reader hub connection failed (%s); reconnecting", exc)
            self._subscribed.clear()
            delay = min(self._retry_max, 0.2 * 2**attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _negotiate(self) -> str:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(
                f"{self.url}/reader/hub/negotiate?negotiateVersion=1", headers=self._headers()
            )
        if response.status_code in (401, 403):
            raise ConnectorError(
                f"the Reader hub refused the token ({response.status_code}): check it has "
                f"read:{self.topic}"
            )
        response.raise_for_status()
        body = response.json()
        token = body.get("connectionToken") or body.get("connectionId")
        if not isinstance(token, str):
            raise ConnectorError("the Reader hub's negotiate answer has no connection token")
        return token

    def _ws_url(self, connection: str) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit(
            (scheme, parts.netloc, f"{parts.path}/reader/hub", f"id={connection}", "")
        )

    async def _session(self) -> None:
        stop = self._stop
        assert stop is not None
        connection = await self._negotiate()
        async with websockets.connect(
            self._ws_url(connection), additional_headers=self._headers(), ping_interval=None
        ) as ws:
            await ws.send(msgspec.json.encode({"protocol": "json", "version": 1}).decode() + RS)
            ids = itertools.count(1)
            pending: set[str] = set()
            for parameter in self.parameters:
                invocation = str(next(ids))
                pending.add(invocation)
                await ws.send(
                    _frame(
                        1, invocation, "SubscribeToParameter", self.topic, self.stream, parameter
                    )
                )
            # Owned here: whichever ends first (reader error, keep-alive error, stop) ends all.
            tasks = [
                asyncio.create_task(self._read(ws, pending)),
                asyncio.create_task(self._keep_alive(ws)),
                asyncio.create_task(stop.wait()),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks[:2]:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error

    async def _keep_alive(self, ws: websockets.ClientConnection) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            await ws.send('{"type":6}' + RS)

    async def _read(self, ws: websockets.ClientConnection, pending: set[str]) -> None:
        handshake = False
        async for raw in ws:
            text = raw if isinstance(raw, str) else raw.decode()
            for part in text.split(RS):
                if not part:
                    continue
                message: dict[str, Any] = msgspec.json.decode(part)
                if not handshake:
                    if message.get("error"):
                        raise ConnectorError(f"Reader hub handshake failed: {message['error']}")
                    handshake = True
                    continue
                kind = message.get("type")
                if kind == 1 and message.get("target") == "ParameterDataReceived":
                    self._add(message.get("arguments") or [])
                elif kind == 3:
                    if message.get("error"):
                        raise ConnectorError(f"subscription refused: {message['error']}")
                    pending.discard(str(message.get("invocationId")))
                    if not pending:
                        self.state = LiveState.SUBSCRIBED
                        self._subscribed.set()
                elif kind == 7:
                    raise ConnectorError(f"the Reader hub closed the connection: {message}")
        raise ConnectorError("the Reader hub connection ended")

    def _add(self, arguments: list[Any]) -> None:
        points: list[Point] = []
        for data in arguments:
            if not isinstance(data, dict):
                continue
            stream = str(data.get("streamId", ""))
            epoch = int(data.get("epoch") or 0)
            stamps = data.get("timestamps") or []
            for name, values in (data.get("numericValues") or {}).items():
                for stamp, value in zip(stamps, values, strict=False):
                    if value is not None:
                        points.append(Point(epoch + int(stamp), stream, name, float(value)))
        with self._lock:
            self._points.extend(points)
            self.received += len(points)


def _frame(kind: int, invocation: str, target: str, *arguments: Any) -> str:
    body = {
        "type": kind,
        "invocationId": invocation,
        "target": target,
        "arguments": list(arguments),
    }
    return msgspec.json.encode(body).decode() + RS


def render(live: LiveTopic, *, title: str | None = None) -> None:
    """Draw the dashboard for `live` with Streamlit: one line per stream and parameter."""
    import streamlit as st

    st.title(title or f"Live: {live.topic}")
    frame = live.frame()
    status = f"{live.state.value} · {live.received} points received"
    if live.last_error:
        status += f" · last error: {live.last_error}"
    st.caption(status)
    if frame.empty:
        st.info(f"Waiting for data on {live.topic!r} ...")
        return
    frame["series"] = frame["stream"] + " / " + frame["parameter"]
    wide = frame.pivot_table(index="time", columns="series", values="value", aggfunc="last")
    st.line_chart(wide)
    latest = frame.groupby("series", sort=True)["value"].last()
    columns = st.columns(min(4, len(latest)))
    for i, (series, value) in enumerate(latest.items()):
        columns[i % len(columns)].metric(str(series), f"{value:g}")
