"""``ServerOptions.max_parallel_invocations``: up to N invocations of one connection run at once,
started in arrival order; completions come back as each finishes; errors stay per invocation.

The hub runs in the test's own event loop (uvicorn served as a task), so the test sees its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from streamport.errors import ConfigError
from streamport.gateway.signalr import Context, HubError, ServerOptions, SignalRServer
from tests.gateway.signalr.rawclient import RS, RawConnection, raw_connection
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


class Probe:
    """What every connection's hub records, shared with the test."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.events: list[str] = []
        self.running = 0
        self.max_running = 0
        self.release = asyncio.Event()
        self.changed = asyncio.Event()
        self.server: SignalRServer | None = None  # set by `serve`

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.started) < count:
                self.changed.clear()
                await self.changed.wait()


class ProbeHub:
    def __init__(self, ctx: Context, probe: Probe) -> None:
        self.ctx = ctx
        self.probe = probe

    async def hold(self, n: int) -> int:
        """Runs until the test releases it."""
        probe = self.probe
        probe.started.append(n)
        probe.running += 1
        probe.max_running = max(probe.max_running, probe.running)
        probe.changed.set()
        try:
            await probe.release.wait()
        finally:
            probe.running -= 1
        return n

    async def step(self, n: int) -> int:
        """Suspends a few times between its start and its end."""
        self.probe.events.append(f"start {n}")
        for _ in range(5):
            await asyncio.sleep(0)
        self.probe.events.append(f"end {n}")
        return n

    async def check(self, n: int) -> int:
        await asyncio.sleep(0)
        if n % 2:
            raise HubError(f"odd {n}")
        return n * 10


@contextlib.asynccontextmanager
async def serve(probe: Probe, options: ServerOptions) -> AsyncIterator[str]:
    server = probe.server = SignalRServer(lambda ctx: ProbeHub(ctx, probe), options)

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        async with server:
            yield

    app = Starlette(routes=[server.route("/hub")], lifespan=lifespan)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws_ping_interval=None
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    try:
        async with asyncio.timeout(30):
            while not uv.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        probe.release.set()
        uv.should_exit = True
        await task


async def send_all(conn: RawConnection, target: str, args: list[int]) -> None:
    """All invocations in one frame: they reach the server together."""
    await conn.send_text(
        "".join(
            json.dumps({"type": 1, "invocationId": str(n), "target": target, "arguments": [n]}) + RS
            for n in args
        )
    )


async def completions(conn: RawConnection, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < count:
        message = await conn.recv_skip_pings()
        assert message["type"] == 3, message
        out.append(message)
    return out


async def test_up_to_n_invocations_run_at_once_started_in_arrival_order() -> None:
    probe = Probe()
    async with (
        serve(probe, ServerOptions(max_parallel_invocations=4)) as url,
        raw_connection(url) as conn,
    ):
        await send_all(conn, "hold", list(range(7)))
        await probe.wait_for(4)  # four run together (one at a time would stop at one)
        assert probe.started == [0, 1, 2, 3]
        assert probe.running == 4
        probe.release.set()
        done = await completions(conn, 7)
    assert sorted(int(m["invocationId"]) for m in done) == list(range(7))
    assert all(m["result"] == int(m["invocationId"]) for m in done)
    assert probe.started == list(range(7))
    assert probe.max_running == 4  # never more than N


async def test_the_default_runs_one_invocation_at_a_time() -> None:
    probe = Probe()
    async with serve(probe, ServerOptions()) as url, raw_connection(url) as conn:
        await send_all(conn, "step", [0, 1, 2])
        await completions(conn, 3)
    assert probe.events == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]


async def test_parallel_invocations_interleave_and_complete_as_they_finish() -> None:
    probe = Probe()
    async with (
        serve(probe, ServerOptions(max_parallel_invocations=8)) as url,
        raw_connection(url) as conn,
    ):
        await send_all(conn, "hold", [0])
        await probe.wait_for(1)
        await send_all(conn, "step", [1, 2])
        first = await completions(conn, 2)  # hold(0) is still running
        assert sorted(m["invocationId"] for m in first) == ["1", "2"]
        probe.release.set()
        last = await completions(conn, 1)
    assert last == [{"type": 3, "invocationId": "0", "result": 0}]
    assert probe.events[:2] == ["start 1", "start 2"]  # both started before either ended


async def test_errors_come_back_per_invocation() -> None:
    probe = Probe()
    async with (
        serve(probe, ServerOptions(max_parallel_invocations=16)) as url,
        raw_connection(url) as conn,
    ):
        await send_all(conn, "check", list(range(40)))
        done = await completions(conn, 40)
    by_id = {int(m["invocationId"]): m for m in done}
    assert sorted(by_id) == list(range(40))
    for n, message in by_id.items():
        if n % 2:
            assert message["error"] == (
                f"An unexpected error occurred invoking 'check' on the server. "
                f"HubException: odd {n}"
            )
            assert "result" not in message
        else:
            assert message == {"type": 3, "invocationId": str(n), "result": n * 10}


async def test_the_server_counts_invocations_until_their_hub_method_starts() -> None:
    # what the fan-out reads to tell writes still on their way from a quiet moment
    probe = Probe()
    async with (
        serve(probe, ServerOptions(max_parallel_invocations=4)) as url,
        raw_connection(url) as conn,
    ):
        assert probe.server is not None
        queued = probe.server.queued
        await send_all(conn, "hold", list(range(6)))
        await probe.wait_for(4)
        assert queued.count == 2  # four running, two waiting for a slot
        probe.release.set()
        await completions(conn, 6)
        assert queued.count == 0
        await send_all(conn, "nosuch", [1])  # answered with an error: counted out too
        await send_all(conn, "check", [3, 4])
        await completions(conn, 3)
        assert queued.count == 0


async def test_invocations_a_closed_connection_never_started_are_not_counted() -> None:
    probe = Probe()
    async with serve(probe, ServerOptions(max_parallel_invocations=2)) as url:
        assert probe.server is not None
        queued = probe.server.queued
        async with raw_connection(url) as conn:
            await send_all(conn, "hold", list(range(5)))
            await probe.wait_for(2)
            assert queued.count == 3
        probe.release.set()  # the two running finish; what is still queued never runs
        async with asyncio.timeout(10):
            while queued.count:
                await asyncio.sleep(0.01)
        assert len(probe.started) < 5


def test_at_least_one_invocation_must_be_allowed() -> None:
    with pytest.raises(ConfigError, match="max_parallel_invocations"):
        ServerOptions(max_parallel_invocations=0)
