"""A real PostgreSQL 15 server for the tests (Debian's ``postgresql-15``, scripts/provision.d/10-services.sh).

``initdb`` makes a cluster in a temporary directory; ``postgres`` listens on a free 127.0.0.1 port
with trust authentication for the user ``streamport``. PostgreSQL refuses to run as root, so as root
both run as the ``postgres`` system user (the directory is handed to it).

Session fixtures: ``postgres`` (the :class:`PostgresService`) and ``postgres_dsn`` (a libpq
connection string). Tests make their own tables with unique names. Durability settings are relaxed
(``fsync=off``): the tests kill connectors, never the database.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.services._process import (
    ServerProcess,
    ServiceError,
    SharedService,
    port_open,
    service_in,
)
from tests.services.ports import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "streamport"


def _run_as() -> str | None:
    """The system user to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceError(
            "running as root and there is no 'postgres' user to run PostgreSQL as"
        ) from exc
    return "postgres"


class PostgresService:
    def __init__(self, workdir: Path) -> None:
        if not (BIN / "postgres").exists():
            raise ServiceError(
                f"{BIN / 'postgres'} is missing: run scripts/provision.d/10-services.sh"
            )
        self.workdir = workdir
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.socket_dir = workdir / "socket"
        self.log_path = workdir / "postgres.log"
        self.user = _run_as()
        self._initialised = False
        self._server = ServerProcess(
            "PostgreSQL",
            [
                str(BIN / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=100",
                "-c",
                "shared_buffers=64MB",
            ],
            self.log_path,
            self.port,
            user=self.user,
            stop_signal=signal.SIGINT,  # "fast" shutdown: disconnect clients, do not wait for them
        )

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres connect_timeout=10"

    @property
    def running(self) -> bool:
        return self._server.running

    def _initdb(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.workdir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.log_path.touch()
            os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
        done = subprocess.run(
            [
                str(BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            user=self.user,
            cwd=self.workdir,
        )
        if done.returncode != 0:
            raise ServiceError(f"initdb failed:\n{done.stdout}{done.stderr}")
        self._initialised = True

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        done = subprocess.run(
            [str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER],
            capture_output=True,
            check=False,
            timeout=10,
        )
        return done.returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        if not self._initialised:
            self._initdb()
        self._server.start(timeout, ready=self._ready)

    def stop(self) -> None:
        self._server.stop()

    def kill(self) -> None:
        self._server.kill()


def postgres_service(workdir: Path) -> AbstractContextManager[PostgresService]:
    return service_in(PostgresService, workdir)


_shared = SharedService(PostgresService, "streamport-postgres-")


def shared_postgres() -> PostgresService:
    """The test process's one server, started on first use and stopped at exit."""
    return _shared.get()


@pytest.fixture(scope="session")
def postgres() -> PostgresService:
    return shared_postgres()


@pytest.fixture(scope="session")
def postgres_dsn(postgres: PostgresService) -> str:
    return postgres.dsn
