"""A real Mosquitto MQTT broker for the tests (Debian's ``mosquitto``, scripts/provision.d/10-services.sh).

It listens on a free 127.0.0.1 port, anonymous access, persistence in a temporary directory.
Session fixtures: ``mosquitto`` (the :class:`MosquittoService`) and ``mqtt_port``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.services._process import ServerProcess, ServiceError
from tests.services.ports import free_port


def _binary() -> str:
    for candidate in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("mosquitto")
    if found is None:
        raise ServiceError("mosquitto is not installed: run scripts/provision.d/10-services.sh")
    return found


class MosquittoService:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._server = ServerProcess(
            "Mosquitto", [_binary(), "-c", str(self.config_path)], self.log_path, self.port
        )
        self._configured = False

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def running(self) -> bool:
        return self._server.running

    def _configure(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # Generous queues: a test or benchmark subscriber may fall behind a fast publisher.
            "max_queued_messages 1000000",
            "max_inflight_messages 1000",
        ]
        if os.geteuid() == 0:
            # Mosquitto drops root for the "mosquitto" user unless told to stay; stay, so it can
            # write in our temporary directory.
            lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n")
        self._configured = True

    def start(self, timeout: float = 30.0) -> None:
        if not self._configured:
            self._configure()
        self._server.start(timeout)

    def stop(self) -> None:
        self._server.stop()

    def kill(self) -> None:
        self._server.kill()


@contextmanager
def mosquitto_service(workdir: Path) -> Iterator[MosquittoService]:
    service = MosquittoService(workdir)
    try:
        service.start()
        yield service
    finally:
        service.stop()


_shared: MosquittoService | None = None


def shared_mosquitto() -> MosquittoService:
    """The test process's one Mosquitto broker, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        workdir = Path(tempfile.mkdtemp(prefix="streamport-mosquitto-"))
        service = MosquittoService(workdir)
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        atexit.register(service.stop)
        service.start()
        _shared = service
    elif not _shared.running:
        _shared.start()
    return _shared


@pytest.fixture(scope="session")
def mosquitto() -> MosquittoService:
    return shared_mosquitto()


@pytest.fixture(scope="session")
def mqtt_port(mosquitto: MosquittoService) -> int:
    return mosquitto.port
