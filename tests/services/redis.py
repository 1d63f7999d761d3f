"""A real Redis server for the tests (Debian's ``redis-server``, scripts/provision.d/10-services.sh).

It listens on a free 127.0.0.1 port with its working directory in a temporary directory and no
persistence. Session fixtures: ``redis_server`` (the :class:`RedisService`) and ``redis_url``.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.services._process import ServerProcess, ServiceError, SharedService, service_in
from tests.services.ports import free_port


class RedisService:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError(
                "redis-server is not installed: run scripts/provision.d/10-services.sh"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "redis.log"
        self._server = ServerProcess(
            "Redis",
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
            ],
            self.log_path,
            self.port,
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self, timeout: float = 30.0) -> None:
        self._server.start(timeout)

    def stop(self) -> None:
        self._server.stop()


def redis_service(workdir: Path) -> AbstractContextManager[RedisService]:
    return service_in(RedisService, workdir)


_shared = SharedService(RedisService, "streamport-redis-")


def shared_redis() -> RedisService:
    """The test process's one server, started on first use and stopped at exit."""
    return _shared.get()


@pytest.fixture(scope="session")
def redis_server() -> RedisService:
    return shared_redis()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisService) -> str:
    return redis_server.url
