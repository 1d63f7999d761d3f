"""Running the Node scripts of tests/js from pytest."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from queue import Empty, Queue
from types import TracebackType
from typing import Any

JS_DIR = Path(__file__).resolve().parents[2] / "js"


def _check_installed() -> None:
    if not (JS_DIR / "node_modules" / "@microsoft" / "signalr").is_dir():
        raise RuntimeError(
            f"{JS_DIR}/node_modules is missing: run scripts/provision.d/20-node.sh (npm ci)"
        )


class NodeClient:
    """``node tests/js/client.mjs <config>``, reading its JSON lines as they come."""

    def __init__(
        self, config: dict[str, Any], script: str = "client.mjs", timeout: float = 60
    ) -> None:
        _check_installed()
        self.timeout = timeout
        self._proc = subprocess.Popen(
            ["node", str(JS_DIR / script), json.dumps(config)],
            cwd=JS_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: Queue[dict[str, Any]] = Queue()
        self._stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip():
                self._lines.put(json.loads(line))
        self._lines.put({"event": "exit"})

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)

    def wait_for(self, event: str) -> dict[str, Any]:
        while True:
            try:
                line = self._lines.get(timeout=self.timeout)
            except Empty:
                raise AssertionError(f"node: no {event!r} within {self.timeout}s") from None
            if line["event"] == event:
                return line
            if line["event"] in ("failed", "exit"):
                raise AssertionError(f"node failed: {line}\nstderr:\n{''.join(self._stderr)}")

    def result(self) -> dict[str, Any]:
        results: dict[str, Any] = self.wait_for("done")["results"]
        return results

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(10)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()


def run_node(config: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    with NodeClient(config, timeout=timeout) as client:
        return client.result()
