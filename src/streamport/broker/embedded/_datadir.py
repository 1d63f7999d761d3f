"""The data directory: its marker, its lock, and the topics' metadata.

Layout::

    <dir>/streamport-data.json     marker: {"format": "streamport.embedded-log", "version": 1}
    <dir>/lock                     flock'ed by the process that has the directory open
    <dir>/offsets.db               committed offsets (SQLite, see _offsets)
    <dir>/topics/<topic>/topic.json
    <dir>/topics/<topic>/<partition>/<base offset>.log
    <dir>/staging/                 topics being created (renamed into topics/ when complete)
    <dir>/trash/                   topics being deleted (emptied on startup)

A directory that is neither empty nor marked is refused, as is an unknown format version: a
wrong path must never be taken over or silently reset.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Final

import msgspec

from streamport.broker.base import TopicConfig, TopicInfo, validate_topic_name
from streamport.broker.embedded._segment import create_segment, fsync_dir
from streamport.errors import DataDirError, InvalidTopicName

MARKER: Final = "streamport-data.json"
FORMAT: Final = "streamport.embedded-log"
VERSION: Final = 1
_LOCK: Final = "lock"


class DataDir:
    """An open, locked data directory. Blocking methods: call them off the event loop."""

    def __init__(self, root: Path, lock_fd: int) -> None:
        self.root = root
        self._lock_fd = lock_fd
        self.topics_dir = root / "topics"
        self.staging = root / "staging"
        self.trash = root / "trash"
        self.offsets_path = root / "offsets.db"

    @classmethod
    def open(cls, root: Path) -> DataDir:
        try:
            root.mkdir(parents=True, exist_ok=True)
            entries = {p.name for p in root.iterdir()}
        except OSError as exc:
            raise DataDirError(f"cannot use data directory {root}: {exc}") from exc
        marked = MARKER in entries
        if marked:
            _check_marker(root / MARKER)
        elif entries - {_LOCK}:
            raise DataDirError(
                f"data directory {root} is not empty and has no {MARKER} marker, so it is not "
                f"streamport's (it holds {sorted(entries)[:5]}): choose an empty or new directory"
            )
        lock_fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise DataDirError(
                f"data directory {root} is in use by another streamport process (it holds "
                f"{root / _LOCK}); stop that process or use another directory"
            ) from None
        data = cls(root, lock_fd)
        try:
            data._prepare(marked)
        except BaseException:
            data.close()
            raise
        return data

    def _prepare(self, marked: bool) -> None:
        for d in (self.topics_dir, self.staging, self.trash):
            d.mkdir(exist_ok=True)
        for d in (self.staging, self.trash):  # leftovers of an interrupted create or delete
            for child in d.iterdir():
                shutil.rmtree(child)
        if not marked:
            tmp = self.root / (MARKER + ".tmp")
            tmp.write_text(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
            os.replace(tmp, self.root / MARKER)
            fsync_dir(self.root)

    def close(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def load_topics(self) -> list[TopicInfo]:
        topics = []
        for d in sorted(self.topics_dir.iterdir()):
            try:
                validate_topic_name(d.name)
            except InvalidTopicName:
                raise DataDirError(f"unexpected entry {d} in the topics directory") from None
            try:
                config = msgspec.json.decode((d / "topic.json").read_bytes(), type=TopicConfig)
            except (OSError, msgspec.DecodeError) as exc:
                raise DataDirError(f"cannot read the metadata of topic {d.name!r} ({exc})") from exc
            topics.append(_info(d.name, config))
        return topics

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.topics_dir / topic / str(partition)

    def create_topic(self, name: str, config: TopicConfig, *, fsync: bool) -> None:
        """Create the topic's files in staging, then rename them into place (atomic)."""
        tmp = self.staging / uuid.uuid4().hex
        tmp.mkdir()
        (tmp / "topic.json").write_bytes(msgspec.json.encode(config))
        for p in range(config.partitions):
            (tmp / str(p)).mkdir()
            create_segment(tmp / str(p), 0, fsync=fsync)
        os.rename(tmp, self.topics_dir / name)
        if fsync:
            fsync_dir(self.topics_dir)

    def delete_topic(self, name: str) -> None:
        doomed = self.trash / uuid.uuid4().hex
        os.rename(self.topics_dir / name, doomed)
        shutil.rmtree(doomed)


def _info(name: str, config: TopicConfig) -> TopicInfo:
    return TopicInfo(
        name=name,
        partitions=config.partitions,
        retention_ms=config.retention_ms,
        retention_bytes=config.retention_bytes,
    )


def _check_marker(path: Path) -> None:
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataDirError(
            f"the marker {path} is unreadable ({exc}): the directory is corrupt"
        ) from exc
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise DataDirError(f"the marker {path} is not a streamport embedded-log marker: {marker!r}")
    if marker.get("version") != VERSION:
        raise DataDirError(
            f"data directory format version {marker.get('version')!r} in {path} is not the "
            f"version {VERSION} this streamport reads: use a matching streamport release"
        )
