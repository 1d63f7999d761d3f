"""The producer's envelope encoder writes what ``model.encode`` writes (orjson fast path)."""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streamport import model
from streamport.client._encode import encode

IDS = st.text(min_size=1, max_size=6).filter(lambda s: "/" not in s and "\\" not in s)
NUMBERS = st.one_of(
    st.floats(),  # NaN and infinities included: both write null
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**64, 2**80),  # beyond orjson: model.encode writes it
    st.none(),
)


@st.composite
def packets(draw: st.DrawFn) -> model.TimeseriesData:
    count = draw(st.integers(0, 6))
    column = st.lists(NUMBERS, min_size=count, max_size=count)
    texts = st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=count, max_size=count)
    blobs = st.lists(st.one_of(st.none(), st.binary(max_size=3)), min_size=count, max_size=count)
    return model.TimeseriesData(
        epoch=draw(st.sampled_from([0, 0, 1_000])),
        timestamps=draw(st.lists(st.integers(0, 2**62), min_size=count, max_size=count)),
        numeric_values=draw(st.dictionaries(IDS, column, max_size=3)),
        string_values=draw(st.dictionaries(IDS, texts, max_size=2)),
        binary_values=draw(st.one_of(st.just({}), st.dictionaries(IDS, blobs, max_size=1))),
        tag_values=draw(st.dictionaries(IDS, texts, max_size=2)),
    )


def parts(value: bytes) -> tuple[bytes, bytes, dict[str, object]]:
    """(bytes before V, V's bytes, the envelope's fields but V)."""
    envelope = msgspec.json.decode(value)
    start, end = envelope.pop("S"), envelope.pop("E")
    del envelope["V"]
    return value[:start], value[start:end], envelope


@settings(max_examples=400, deadline=None)
@given(packets())
def test_same_bytes_as_the_model_encoder(data: model.TimeseriesData) -> None:
    """Byte for byte, except that a positive exponent keeps its sign (1e+16 for 1e16, which
    moves the envelope's ``E`` offset by one each)."""
    ours, theirs = parts(encode(data)), parts(model.encode(data))
    assert ours[0] == theirs[0]
    assert ours[1].replace(b"e+", b"e") == theirs[1].replace(b"e+", b"e")
    assert ours[2] == theirs[2]
    if b"e+" not in ours[1]:
        assert encode(data) == model.encode(data)
    back = model.decode(encode(data))
    assert isinstance(back, model.TimeseriesData)
    assert back.timestamps == [t + data.epoch for t in data.timestamps]
    for pid, column in data.numeric_values.items():
        for got, sent in zip(back.numeric_values[pid], column, strict=True):
            if sent is None or (isinstance(sent, float) and not math.isfinite(sent)):
                assert got is None
            else:
                assert got == float(sent)


def test_what_orjson_refuses_and_other_messages_take_the_model_encoder() -> None:
    huge = model.TimeseriesData(timestamps=[1], numeric_values={"x": [2**70]})
    assert encode(huge) == model.encode(huge)
    blob = model.TimeseriesData(timestamps=[1], binary_values={"b": [b"\x00"]})
    assert encode(blob) == model.encode(blob)
    event = model.EventData(id="e", timestamp=1, value="v")
    assert encode(event) == model.encode(event)
