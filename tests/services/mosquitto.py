"""A real Mosquitto MQTT broker for the tests (Debian's ``mosquitto``, scripts/provision.d/10-services.sh).

It listens on a free 127.0.0.1 port, anonymous access, persistence in a temporary directory.
Session fixtures: ``mosquitto`` (the :class:`MosquittoService`) and ``mqtt_port``.
"""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.services._process import ServerProcess, ServiceError, SharedService, service_in
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


def mosquitto_service(workdir: Path) -> AbstractContextManager[MosquittoService]:
    return service_in(MosquittoService, workdir)


_shared = SharedService(MosquittoService, "streamport-mosquitto-")


def shared_mosquitto() -> MosquittoService:
    """The test process's one server, started on first use and stopped at exit."""
    return _shared.get()


@pytest.fixture(scope="session")
def mosquitto() -> MosquittoService:
    return shared_mosquitto()


@pytest.fixture(scope="session")
def mqtt_port(mosquitto: MosquittoService) -> int:
    return mosquitto.port
