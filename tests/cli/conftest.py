"""`streamport up` as a real process, and the CLI as a real command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STREAMPORT = [sys.executable, "-m", "streamport"]


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    token: str | None
    output: list[str]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._close()

    def _close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()


def start_server(data_dir: Path, *args: str) -> Server:
    """Start `streamport up` on a free port; return once /healthz answers 200."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPORT_")}
    process = subprocess.Popen(
        [*STREAMPORT, "up", "--data-dir", str(data_dir), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    token = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            process.wait(30)
            process.stdout.close()
            raise RuntimeError("streamport up exited:\n" + "".join(lines))
        lines.append(line)
        if line.strip().startswith("sp_"):
            token = line.strip()
        match = re.match(r"Listening on (http://\S+)", line)
        if match:
            url = match.group(1)
            break
    else:
        raise RuntimeError("streamport up did not print its URL:\n" + "".join(lines))
    # Keep draining the server's output so a chatty server never blocks on a full pipe.
    stdout = process.stdout
    threading.Thread(target=lambda: lines.extend(stdout), daemon=True).start()
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return Server(process, url, token, lines)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("streamport up never became healthy")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = start_server(tmp_path / "data")
    yield started
    started.stop()


def run_cli(
    *args: str, stdin: str | None = None, server: Server | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPORT_")}
    if server is not None:
        env["STREAMPORT_URL"] = server.url
        if server.token:
            env["STREAMPORT_TOKEN"] = server.token
    return subprocess.run(
        [*STREAMPORT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
