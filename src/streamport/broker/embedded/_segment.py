"""Segments: the files of one partition, their in-memory offset index, recovery and reads.

A partition directory holds ``<base offset, 20 digits>.log`` files, each one a run of frames
(see ``_frame``). The offset index is kept in memory, one entry per batch (base offset, file
position, max timestamp) in compact ``array`` columns, and rebuilt on startup by walking the
frame headers: batches are large (one per produce call), so the index stays small.

Everything here that touches files is blocking and is called from the writer thread, from
``asyncio.to_thread`` at startup, or from ``read_frames`` under ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import NamedTuple

from streamport.broker.base import ConsumedRecord
from streamport.broker.embedded._frame import (
    FILE_HEADER,
    FrameError,
    decode_frame,
    decode_records,
    file_header,
    read_file_header,
)
from streamport.errors import DataDirError

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".log"


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}{SEGMENT_SUFFIX}"


class Segment:
    """One segment file as the event loop sees it: only batches that were acknowledged."""

    __slots__ = ("base", "end_offset", "max_ts", "offsets", "path", "positions", "size")

    def __init__(self, path: Path, base: int) -> None:
        self.path = path
        self.base = base
        self.end_offset = base  # offset after the last batch
        self.size = FILE_HEADER.size  # bytes of the file that hold acknowledged batches
        self.offsets = array("q")  # base offset of each batch
        self.positions = array("q")  # file position of each batch
        self.max_ts = array("q")  # max record timestamp of each batch

    def add(self, base_offset: int, count: int, position: int, end: int, max_ts: int) -> None:
        self.offsets.append(base_offset)
        self.positions.append(position)
        self.max_ts.append(max_ts)
        self.end_offset = base_offset + count
        self.size = end

    @property
    def empty(self) -> bool:
        return not self.offsets

    @property
    def newest_ts(self) -> int:
        return max(self.max_ts) if self.max_ts else -1


class ReadPlan(NamedTuple):
    """Bytes to read for one partition: [start, end) of `path`, from `offset` on."""

    topic: str
    partition: int
    path: Path
    start: int
    end: int
    offset: int
    limit: int


def plan_read(
    topic: str, partition: int, segments: list[Segment], offset: int, limit: int, max_bytes: int
) -> ReadPlan | None:
    """Which bytes hold up to `limit` records from `offset` on (None if there are none)."""
    bases = [s.base for s in segments]
    i = bisect_right(bases, offset) - 1
    if i < 0:
        return None
    while i < len(segments) and segments[i].end_offset <= offset:
        i += 1
    if i == len(segments):
        return None
    seg = segments[i]
    offset = max(offset, seg.base)
    first = max(bisect_right(seg.offsets, offset) - 1, 0)
    last = max(bisect_left(seg.offsets, offset + limit), first + 1)
    start = seg.positions[first]
    # Stay under max_bytes, but always read at least one whole batch.
    cap = bisect_right(seg.positions, start + max_bytes) - 1
    last = min(last, max(cap, first + 1))
    end = seg.positions[last] if last < len(seg.positions) else seg.size
    return ReadPlan(topic, partition, seg.path, start, end, offset, limit)


def read_frames(plans: list[ReadPlan]) -> list[tuple[ReadPlan, list[ConsumedRecord]]]:
    """Read and decode every plan (blocking: call through ``asyncio.to_thread``).

    A plan whose file was deleted by retention meanwhile yields no records; the consumer then
    finds its position below the low watermark and moves on.
    """
    out: list[tuple[ReadPlan, list[ConsumedRecord]]] = []
    for plan in plans:
        try:
            fd = os.open(plan.path, os.O_RDONLY)
        except FileNotFoundError:
            out.append((plan, []))
            continue
        try:
            buf = os.pread(fd, plan.end - plan.start, plan.start)
        finally:
            os.close(fd)
        records: list[ConsumedRecord] = []
        pos, want = 0, plan.limit
        while pos < len(buf) and want > 0:
            # Acknowledged bytes were checked on recovery or written by us: skip the crc here.
            frame = decode_frame(buf, pos, verify=False)
            if frame.base_offset + frame.n_records > plan.offset:
                batch = decode_records(plan.topic, plan.partition, frame, plan.offset, want)
                records.extend(batch)
                want -= len(batch)
            pos = frame.end
        out.append((plan, records))
    return out


def scan_segment(path: Path, *, last: bool) -> tuple[Segment, int]:
    """Index one segment file; returns it with the number of bytes cut off a torn tail.

    Only the last segment of a partition may end in a torn or bad frame (a write the crash
    interrupted, never acknowledged): it is truncated there. Anywhere else such a frame is
    corruption and raises DataDirError.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataDirError(f"cannot read segment file {path}: {exc}") from exc
    try:
        base = read_file_header(data[: FILE_HEADER.size])
    except ValueError as exc:
        raise DataDirError(
            f"{path} is not a streamport segment file ({exc}); the data directory is corrupt "
            "or not streamport's: restore it from a backup or point streamport at another directory"
        ) from exc
    if path.name != segment_name(base):
        raise DataDirError(
            f"segment file {path} says its base offset is {base}: the file was renamed"
        )
    seg = Segment(path, base)
    pos = FILE_HEADER.size
    while pos < len(data):
        try:
            frame = decode_frame(data, pos, verify=True)
            if frame.base_offset != seg.end_offset:
                raise FrameError(
                    f"batch at offset {frame.base_offset} where {seg.end_offset} was expected",
                    torn=False,
                )
        except FrameError as exc:
            if not last:
                raise DataDirError(
                    f"segment file {path} is corrupt at byte {pos}: {exc}; restore the data "
                    "directory from a backup"
                ) from exc
            cut = len(data) - pos
            log.warning(
                "truncating %d bytes at byte %d of %s (%s): an unacknowledged write cut short",
                cut,
                pos,
                path,
                exc,
            )
            with path.open("r+b") as fh:
                fh.truncate(pos)
                os.fsync(fh.fileno())
            return seg, cut
        seg.add(frame.base_offset, frame.n_records, pos, frame.end, frame.max_ts)
        pos = frame.end
    return seg, 0


def recover_partition(directory: Path) -> list[Segment]:
    """Index every segment of a partition directory, creating the first one if there is none."""
    for leftover in directory.glob("*" + SEGMENT_SUFFIX + ".tmp"):
        leftover.unlink()  # a segment whose creation a crash interrupted; it held no batch
    paths = sorted(p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX))
    others = [p.name for p in directory.iterdir() if not p.name.endswith(SEGMENT_SUFFIX)]
    if others:
        raise DataDirError(f"unexpected files {sorted(others)} in partition directory {directory}")
    if not paths:
        return [create_segment(directory, 0, fsync=True)]
    segments: list[Segment] = []
    for i, path in enumerate(paths):
        seg, _ = scan_segment(path, last=i == len(paths) - 1)
        if segments and seg.base != segments[-1].end_offset:
            raise DataDirError(
                f"segment {path} starts at offset {seg.base} but the one before ends at "
                f"{segments[-1].end_offset}: segments are missing or corrupt"
            )
        segments.append(seg)
    return segments


def create_segment(directory: Path, base: int, *, fsync: bool) -> Segment:
    """Create an empty segment file atomically (header written, then renamed into place)."""
    path = directory / segment_name(base)
    tmp = directory / (segment_name(base) + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, file_header(base))
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(directory)
    return Segment(path, base)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
