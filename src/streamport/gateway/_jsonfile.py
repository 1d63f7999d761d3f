"""A list of msgspec structs kept in one JSON file of the data directory (tokens, webhooks).

Re-read when the file changes, at most once per ``max_age`` seconds on hot paths, so several
processes on one directory (a server and ``streamport tokens create --data-dir``, or two gateways)
agree; replaced atomically, and created mode 0600 from the start because it may hold secrets.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Generic, TypeVar

import msgspec

from streamport.errors import DataDirError

_MISSING = (-1, -1)
T = TypeVar("T")


class JsonListFile(Generic[T]):
    def __init__(self, path: Path, item_type: type[T], what: str) -> None:
        self.path = path
        self._decoder = msgspec.json.Decoder(list[item_type])  # type: ignore[valid-type]
        self._what = what
        self._stamp: tuple[int, int] | None = None
        self._checked = -1e9

    def load(self, max_age: float = 0.0) -> list[T] | None:
        """The items if the file changed since the last load (``[]`` once it is gone), else None.

        With `max_age`, the file is not even looked at again within that many seconds.
        """
        now = time.monotonic()
        if max_age and now - self._checked < max_age:
            return None
        self._checked = now
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._stamp == _MISSING:
                return None
            self._stamp = _MISSING
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return None
        try:
            items: list[T] = self._decoder.decode(self.path.read_bytes())
        except msgspec.DecodeError as exc:
            raise DataDirError(f"{self.path} is not a streamport {self._what} file: {exc}") from exc
        self._stamp = stamp
        return items

    def save(self, items: list[T]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.encode(items))
        os.chmod(tmp, 0o600)  # an older tmp file may have had other bits
        os.replace(tmp, self.path)
        self._stamp = None  # the next load reads it back (and notes its stamp)
