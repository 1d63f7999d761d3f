"""A real single-node Apache Kafka broker (KRaft, Kafka 4.x) for the tests.

The jars come from Maven Central through ``scripts/provision.d/30-kafka.sh`` (run by
``scripts/test``, and from here when the libs dir is missing). The broker listens on free
loopback ports, keeps its data in a temporary directory, and can be stopped and started again on
the same ports and data, which outage tests need.

Use it as a context manager::

    with kafka_service(tmp_dir) as kafka:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        kafka.stop()     # outage
        kafka.start()    # same ports, same data

or through :func:`shared_kafka` and the session fixtures ``kafka`` (the :class:`KafkaService`) and
``kafka_bootstrap`` (its ``host:port``), which all share one broker per test process. Wire the
fixtures into a conftest with ``pytest_plugins = ["tests.services.kafka"]`` (root conftest) or
``from tests.services.kafka import kafka, kafka_bootstrap``.
"""

from __future__ import annotations

import atexit
import base64
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.services._process import kill_process, stop_process
from tests.services.ports import free_port

_ROOT = Path(__file__).resolve().parents[2]
_POM = _ROOT / "scripts" / "kafka" / "pom.xml"
_LOG4J2 = _ROOT / "scripts" / "kafka" / "log4j2.xml"
_PROVISION = _ROOT / "scripts" / "provision.d" / "30-kafka.sh"

START_TIMEOUT = 90.0
# Accounts of the SASL/PLAIN listener (test-only credentials).
SASL_USERS = {"streamport": "streamport-secret"}
STOP_TIMEOUT = 30.0


class KafkaServiceError(RuntimeError):
    """The test broker could not be provisioned, formatted or started (the message has the log)."""


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", _POM.read_text())
    if match is None:
        raise KafkaServiceError(f"no <kafka.version> in {_POM}")
    return match.group(1)


def libs_dir() -> Path:
    """Where the provisioning script puts the jars (``STREAMPORT_KAFKA_LIBS`` overrides it)."""
    override = os.environ.get("STREAMPORT_KAFKA_LIBS")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "streamport" / f"kafka-{kafka_version()}" / "libs"


def ensure_libs() -> Path:
    """The libs dir, provisioning it first if the test command has not."""
    libs = libs_dir()
    if not (libs / ".complete").exists():
        done = subprocess.run(
            ["bash", str(_PROVISION)], capture_output=True, text=True, check=False, timeout=900
        )
        if done.returncode != 0 or not (libs / ".complete").exists():
            raise KafkaServiceError(
                f"could not provision the Kafka jars with {_PROVISION}:\n{done.stdout}{done.stderr}"
            )
    return libs


def _cluster_id() -> str:
    # What `kafka-storage.sh random-uuid` prints: a UUID in URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaService:
    """One broker+controller process; ``start()``/``stop()`` may repeat, keeping ports and data."""

    def __init__(self, workdir: Path, *, libs: Path | None = None) -> None:
        self.workdir = workdir
        self.libs = libs or ensure_libs()
        self.port = free_port()
        self.sasl_port = free_port()
        self.controller_port = free_port()
        while len({self.port, self.sasl_port, self.controller_port}) < 3:
            self.sasl_port, self.controller_port = free_port(), free_port()
        self.data_dir = workdir / "data"
        self.log_path = workdir / "kafka.log"
        self.properties_path = workdir / "server.properties"
        self._process: subprocess.Popen[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """A SASL_PLAINTEXT listener (mechanism PLAIN) that accepts :data:`SASL_USERS`."""
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_properties(self) -> None:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                + " ".join(f'user_{user}="{password}"' for user, password in SASL_USERS.items())
                + ";"
            ),
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(1024 * 1024),
            "log.retention.check.interval.ms": "1000",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
        }
        self.properties_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            "-Xmx512m",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_LOG4J2}",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]

    def _format(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                # One argument: an id may start with "-", which a separate -t would take for a flag.
                f"--cluster-id={_cluster_id()}",
                "-c",
                str(self.properties_path),
            ),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise KafkaServiceError(f"kafka-storage format failed:\n{done.stdout}{done.stderr}")
        self._formatted = True

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the broker (formatting its storage the first time) and wait until it answers."""
        if self.running:
            return
        if not self._formatted:
            self._format()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.properties_path)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": "0"})
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise KafkaServiceError(
                    f"Kafka exited with code {code} while starting:\n{self.log_tail()}"
                )
            try:
                metadata = admin.list_topics(timeout=2)
            except KafkaException as exc:
                last_error = str(exc)
            else:
                if metadata.brokers:
                    return
            time.sleep(0.2)
        raise KafkaServiceError(
            f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s ({last_error}):\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut the broker down cleanly (SIGTERM), killing it if it does not exit in time."""
        stop_process(self._process, signal.SIGTERM, timeout)
        self._process = None

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as a crash would."""
        kill_process(self._process)
        self._process = None

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def kafka_service(workdir: Path) -> Iterator[KafkaService]:
    """A started :class:`KafkaService` in `workdir`, stopped on exit."""
    service = KafkaService(workdir)
    try:
        service.start()
        yield service
    finally:
        service.stop()


_shared: KafkaService | None = None


def shared_kafka() -> KafkaService:
    """The test process's one Kafka broker, started on first use and stopped at exit.

    A process-wide broker (rather than one per fixture registration) lets the ``kafka`` fixture,
    the broker contract suite's backend factory and any conftest that imports the fixture share
    one JVM: starting Kafka costs seconds and half a gigabyte.
    """
    global _shared
    if _shared is None:
        workdir = Path(tempfile.mkdtemp(prefix="streamport-kafka-"))
        service = KafkaService(workdir)
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        atexit.register(service.stop)
        service.start()
        _shared = service
    elif not _shared.running:
        _shared.start()  # a test stopped it and failed before starting it again
    return _shared


@pytest.fixture(scope="session")
def kafka() -> KafkaService:
    """The session's Kafka broker. Tests that stop it must start it again before they end."""
    return shared_kafka()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: KafkaService) -> str:
    """``host:port`` of the session's Kafka broker."""
    return kafka.bootstrap
