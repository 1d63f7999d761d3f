"""Property tests of the batch frame: what is encoded decodes back; damage is detected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamport.broker.base import Record
from streamport.broker.embedded._frame import (
    FrameError,
    decode_frame,
    decode_records,
    encode_frame,
    encode_payload,
    file_header,
    read_file_header,
)

records = st.lists(
    st.builds(
        Record,
        value=st.binary(max_size=300),
        key=st.none() | st.binary(max_size=20),
        headers=st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=16)), max_size=3).map(
            tuple
        ),
        timestamp_ms=st.none() | st.integers(0, 2**62),
    ),
    min_size=1,
    max_size=30,
)


def frame_bytes(recs: list[Record], base: int, bts: int) -> bytes:
    payload = encode_payload(recs)
    return encode_frame(base, len(recs), bts, bts, payload) + payload


@given(recs=records, base=st.integers(0, 2**62), bts=st.integers(0, 2**62))
def test_round_trip(recs: list[Record], base: int, bts: int) -> None:
    data = frame_bytes(recs, base, bts)
    frame = decode_frame(b"junk" + data, 4)
    assert (frame.base_offset, frame.n_records, frame.end) == (base, len(recs), len(data) + 4)
    out = decode_records("t", 3, frame, base, 1 << 30)
    assert [(r.offset, r.key, r.value, r.headers) for r in out] == [
        (base + i, r.key, r.value, r.headers) for i, r in enumerate(recs)
    ]
    assert [r.timestamp_ms for r in out] == [
        bts if r.timestamp_ms is None else r.timestamp_ms for r in recs
    ]


@given(recs=records, skip=st.integers(0, 40), limit=st.integers(1, 40))
def test_partial_reads(recs: list[Record], skip: int, limit: int) -> None:
    frame = decode_frame(frame_bytes(recs, 100, 0), 0)
    out = decode_records("t", 0, frame, 100 + skip, limit)
    assert [r.offset for r in out] == list(range(100 + skip, 100 + len(recs)))[:limit]


@given(recs=records, data=st.data())
def test_cut_short_is_torn(recs: list[Record], data: st.DataObject) -> None:
    full = frame_bytes(recs, 0, 0)
    cut = data.draw(st.integers(0, len(full) - 1))
    with pytest.raises(FrameError) as err:
        decode_frame(full[:cut], 0)
    assert err.value.torn


@given(recs=records, data=st.data())
def test_any_flipped_bit_is_detected(recs: list[Record], data: st.DataObject) -> None:
    full = bytearray(frame_bytes(recs, 0, 0))
    where = data.draw(st.integers(4, len(full) - 1))  # past the length field
    full[where] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(FrameError):
        decode_frame(bytes(full), 0)


@given(base=st.integers(0, 2**63 - 1))
def test_file_header(base: int) -> None:
    assert read_file_header(file_header(base)) == base


def test_file_header_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="magic"):
        read_file_header(b"x" * 16)
    with pytest.raises(ValueError, match="shorter"):
        read_file_header(b"SPLOG")
