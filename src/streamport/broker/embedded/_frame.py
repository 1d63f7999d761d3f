"""The on-disk framing of record batches (one frame = one produce call to one partition).

A segment file is a 16-byte file header followed by frames::

    file header   magic b"SPLOG\\0" | u16 format version | i64 base offset of the segment
    frame         u32 length | u32 crc32 | i64 base offset | i32 record count
                  | i64 batch timestamp | i64 max timestamp | payload

All integers are little-endian. ``length`` counts the bytes after the crc (28 header bytes plus
the payload) and ``crc32`` covers exactly those bytes, so a frame cut short by a crash, or with a
flipped bit, is detected on recovery. The payload is msgpack (msgspec), columnar (see ``encode_payload``);
records produced without a timestamp take the batch timestamp (the time of the write).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from itertools import repeat
from typing import Final, NamedTuple

import msgspec

from streamport.broker.base import ConsumedRecord, Headers, Record

FILE_MAGIC: Final = b"SPLOG\x00"
FILE_VERSION: Final = 1
FILE_HEADER: Final = struct.Struct("<6sHq")
FRAME_HEADER: Final = struct.Struct("<IIqiqq")
# Bytes of the frame header that the length and crc fields cover.
_COVERED: Final = FRAME_HEADER.size - 8
_COVERED_HEADER: Final = struct.Struct("<qiqq")
MAX_FRAME_LENGTH: Final = 0xFFFFFFFF


class FrameError(Exception):
    """A frame that cannot be read: cut short (``torn``) or not matching its crc."""

    def __init__(self, message: str, *, torn: bool) -> None:
        super().__init__(message)
        self.torn = torn


class Frame(NamedTuple):
    base_offset: int
    n_records: int
    batch_ts: int
    max_ts: int
    payload: bytes | memoryview
    position: int  # where the frame starts in its buffer or file
    end: int  # where the next frame starts


# The payload is columnar: [keys, values, headers or None, timestamps or None]. None stands
# for "all empty" (headers) and "all the batch timestamp" (timestamps), the common cases, so
# encoding and decoding are a few C-level passes instead of per-record Python work.
_Columns = tuple[list[bytes | None], list[bytes], list[Headers] | None, list[int | None] | None]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Columns)
_NO_HEADERS: Headers = ()


def encode_payload(records: Sequence[Record]) -> bytes:
    keys = [r.key for r in records]
    values = [r.value for r in records]
    headers: list[Headers] | None = [r.headers for r in records]
    stamps: list[int | None] | None = [r.timestamp_ms for r in records]
    if headers is not None and headers.count(_NO_HEADERS) == len(headers):
        headers = None
    if stamps is not None and stamps.count(None) == len(stamps):
        stamps = None
    return _encoder.encode((keys, values, headers, stamps))


def file_header(base_offset: int) -> bytes:
    return FILE_HEADER.pack(FILE_MAGIC, FILE_VERSION, base_offset)


def read_file_header(data: bytes) -> int:
    """The segment base offset in `data` (the first 16 bytes of a segment file).

    Raises ValueError with a reason when the header is not a streamport segment header.
    """
    if len(data) < FILE_HEADER.size:
        raise ValueError(
            f"file is {len(data)} bytes, shorter than the {FILE_HEADER.size}-byte header"
        )
    magic, version, base = FILE_HEADER.unpack_from(data)
    if magic != FILE_MAGIC:
        raise ValueError(f"bad magic {magic!r} (expected {FILE_MAGIC!r})")
    if version != FILE_VERSION:
        raise ValueError(
            f"unknown segment format version {version} (this build reads {FILE_VERSION})"
        )
    if base < 0:
        raise ValueError(f"negative base offset {base}")
    return int(base)


def encode_frame(base_offset: int, count: int, batch_ts: int, max_ts: int, payload: bytes) -> bytes:
    """The frame header for `payload`; write it followed by the payload itself."""
    covered = _COVERED_HEADER.pack(base_offset, count, batch_ts, max_ts)
    crc = zlib.crc32(payload, zlib.crc32(covered))
    length = _COVERED + len(payload)
    if length > MAX_FRAME_LENGTH:
        raise ValueError(f"batch of {len(payload)} bytes is over the 4 GiB frame limit")
    return FRAME_HEADER.pack(length, crc, base_offset, count, batch_ts, max_ts)


def frame_length(payload_size: int) -> int:
    return FRAME_HEADER.size + payload_size


def decode_frame(buf: bytes | memoryview, pos: int, *, verify: bool = True) -> Frame:
    """The frame starting at `pos` in `buf`.

    Raises FrameError (``torn=True``) when `buf` ends inside the frame, or (``torn=False``)
    when the crc or a header field is wrong.
    """
    view = memoryview(buf)
    available = len(view) - pos
    if available < FRAME_HEADER.size:
        raise FrameError(f"{available} bytes left, less than a frame header", torn=True)
    length, crc, base, count, batch_ts, max_ts = FRAME_HEADER.unpack_from(view, pos)
    if length < _COVERED:
        raise FrameError(f"frame length {length} is shorter than its header", torn=False)
    end = pos + 8 + length
    if end > len(view):
        raise FrameError(
            f"frame of {length} bytes runs {end - len(view)} bytes past the end", torn=True
        )
    payload = view[pos + FRAME_HEADER.size : end]
    if verify and zlib.crc32(payload, zlib.crc32(view[pos + 8 : pos + FRAME_HEADER.size])) != crc:
        raise FrameError("crc32 mismatch", torn=False)
    if count <= 0 or base < 0:
        raise FrameError(f"bad frame header (base offset {base}, count {count})", torn=False)
    return Frame(base, count, batch_ts, max_ts, payload, pos, end)


def decode_records(
    topic: str, partition: int, frame: Frame, start_offset: int, limit: int
) -> list[ConsumedRecord]:
    """The records of `frame` from `start_offset` on, at most `limit` of them."""
    keys, values, headers, stamps = _decoder.decode(frame.payload)
    n = len(values)
    if n != frame.n_records or len(keys) != n:
        raise FrameError(
            f"frame at offset {frame.base_offset} holds {n} records, header says {frame.n_records}",
            torn=False,
        )
    skip = max(0, start_offset - frame.base_offset)
    stop = min(n, skip + limit)
    if skip or stop < n:
        keys, values = keys[skip:stop], values[skip:stop]
        headers = headers[skip:stop] if headers is not None else None
        stamps = stamps[skip:stop] if stamps is not None else None
    count = stop - skip
    if stamps is not None and None in stamps:
        bts = frame.batch_ts
        stamps = [bts if s is None else s for s in stamps]
    base = frame.base_offset + skip
    return list(
        map(
            ConsumedRecord,
            repeat(topic, count),
            repeat(partition, count),
            range(base, base + count),
            keys,
            values,
            repeat(_NO_HEADERS, count) if headers is None else headers,
            repeat(frame.batch_ts, count) if stamps is None else stamps,
        )
    )
