"""Committed consumer-group offsets, kept in one SQLite table in the data directory.

Written only by the writer thread (many commits drained together become one transaction) and
read once at startup; the broker serves ``committed()`` from memory. In WAL mode with
``synchronous=NORMAL`` a commit has reached the file (``write()`` returned) when it returns,
so it survives a kill of the process; ``fsync="always"`` uses ``synchronous=FULL``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from streamport.errors import DataDirError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS committed (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
)
"""


class OffsetStore:
    def __init__(self, path: Path, *, fsync: bool) -> None:
        """Open (or create) the store; blocking, raises DataDirError if the file is not usable."""
        self.path = path
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataDirError(f"cannot open the committed-offsets store {path}: {exc}") from exc

    def load(self) -> dict[tuple[str, str], dict[int, int]]:
        out: dict[tuple[str, str], dict[int, int]] = {}
        try:
            rows = self._db.execute("SELECT grp, topic, partition, next_offset FROM committed")
            for group, topic, partition, offset in rows:
                out.setdefault((group, topic), {})[partition] = offset
        except sqlite3.DatabaseError as exc:
            raise DataDirError(
                f"cannot read the committed-offsets store {self.path}: {exc}"
            ) from exc
        return out

    def save(self, rows: list[tuple[str, str, int, int]]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO committed (grp, topic, partition, next_offset) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    def delete_topic(self, topic: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM committed WHERE topic = ?", (topic,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
