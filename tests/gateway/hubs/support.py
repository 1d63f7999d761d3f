"""Running tests/js/quix/hubs.mjs (the real @microsoft/signalr client under Node) from tests."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parents[2] / "js"
SCRIPT = JS_DIR / "quix" / "hubs.mjs"


def node() -> str:
    found = shutil.which("node")
    assert found, "node is required for the SignalR client tests (it is not on PATH)"
    assert (JS_DIR / "node_modules" / "@microsoft" / "signalr").is_dir(), (
        "run `npm ci --prefix tests/js` first"
    )
    return found


async def run_node(command: str, config: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        node(),
        str(SCRIPT),
        command,
        json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS_DIR,
    )
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"node {command} failed:\n{err.decode()}\n{out.decode()}"
    lines = [line for line in out.decode().splitlines() if line.strip() and line != "ready"]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class NodeReader:
    """A Node reader started in the background: `ready()` once subscribed, `result()` at the end."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> NodeReader:
        self.proc = await asyncio.create_subprocess_exec(
            node(),
            str(SCRIPT),
            "read",
            json.dumps(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=JS_DIR,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            line = await self.proc.stdout.readline()
        assert line.strip() == b"ready", line
        return self

    async def result(self, timeout: float = 60) -> dict[str, Any]:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            out, err = await self.proc.communicate()
        assert self.proc.returncode == 0, f"node read failed:\n{err.decode()}\n{out.decode()}"
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    async def __aexit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
