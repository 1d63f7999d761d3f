"""A server process owned by a test fixture: started in a temporary directory, waited for, stopped."""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, Protocol, TypeVar


class ServiceError(RuntimeError):
    """A test service could not start (the message carries the tail of its log)."""


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class ServerProcess:
    """One foreground server process writing to `log_path`; `start()`/`stop()`/`kill()`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        port: int,
        *,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.port = port
        self.user = user
        self.stop_signal = stop_signal
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0, ready: Callable[[], bool] | None = None) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.user,
            )
        check = ready or (lambda: port_open(self.port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise ServiceError(
                    f"{self.name} exited with code {code} while starting:\n{log_tail(self.log_path)}"
                )
            if check():
                return
            time.sleep(0.05)
        self.kill()
        raise ServiceError(
            f"{self.name} did not answer on 127.0.0.1:{self.port} within {timeout:.0f}s:\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self._process, self.stop_signal, timeout)
        self._process = None

    def kill(self) -> None:
        kill_process(self._process)
        self._process = None


def stop_process(process: subprocess.Popen[bytes] | None, stop_signal: int, timeout: float) -> None:
    """Ask `process` to exit with `stop_signal`; kill it if it has not within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_process(process)


def kill_process(process: subprocess.Popen[bytes] | None) -> None:
    """Kill `process` at once (SIGKILL), as a crash would."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(10)


class Service(Protocol):
    """What `service_in` and `SharedService` need of a test service."""

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


@contextmanager
def service_in(factory: Callable[[Path], S], workdir: Path) -> Iterator[S]:
    """A service started in `workdir` for the duration of a with-block."""
    service = factory(workdir)
    try:
        service.start()
        yield service
    finally:
        service.stop()


class SharedService(Generic[S]):
    """The test process's one instance of a service: started on first use (and again if it was
    stopped), stopped and its directory removed at exit."""

    def __init__(self, factory: Callable[[Path], S], prefix: str) -> None:
        self._factory = factory
        self._prefix = prefix
        self._service: S | None = None

    def get(self) -> S:
        if self._service is None:
            workdir = Path(tempfile.mkdtemp(prefix=self._prefix))
            service = self._factory(workdir)
            atexit.register(shutil.rmtree, workdir, ignore_errors=True)
            atexit.register(service.stop)
            service.start()
            self._service = service
        elif not self._service.running:
            self._service.start()
        return self._service
