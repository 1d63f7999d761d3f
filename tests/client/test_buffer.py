"""The producer buffer: its columnar fast paths give what the row-by-row paths give.

Unit tests (no sockets): ``builders_to_raw`` (the buffer's release) against ``rows_to_raw``
(the straightforward row loop that ``TimeseriesData.to_raw`` uses) on the same rows, and
``buffer.publish(data)`` (whole packets sent as column slices) against the same rows built one
by one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamport import model
from streamport.client._buffer import (
    TimeseriesBufferProducer,
    TimeseriesDataBuilder,
    builders_to_raw,
)
from streamport.client._data import Row, TimeseriesData, rows_to_raw
from streamport.errors import ValidationError

PIDS = st.sampled_from(["a", "b", "speed", "gear"])
VALUES = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.binary(max_size=5).map(bytearray),
)
TAGS = st.one_of(st.none(), st.dictionaries(st.sampled_from(["car", "lap"]), st.text(max_size=3)))


def same(a: model.TimeseriesData, b: model.TimeseriesData) -> bool:
    """Equal down to the JSON written (True is not 1.0 there), whatever the key order."""
    return bool(msgspec.json.encode(a, order="sorted") == msgspec.json.encode(b, order="sorted"))


def builder(timestamp: int, values: dict[str, Any], tags: dict[str, str] | None) -> Any:
    # Release never looks at the buffer; add_tag only marks it as having seen tags.
    row = TimeseriesDataBuilder(cast(Any, SimpleNamespace(_tagged=False)), timestamp)
    for pid, value in values.items():
        row.add_value(pid, value)
    if tags is not None:
        row.add_tags(tags)
    return row


def expected(rows: list[Row], default_tags: dict[str, str]) -> model.TimeseriesData:
    """The row loop, then default tags filling the cells a row left empty."""
    raw = rows_to_raw(rows)
    count = len(rows)
    for tag, value in default_tags.items():
        column = raw.tag_values.get(tag, [None] * count)
        raw.tag_values[tag] = [value if v is None else v for v in column]
    return raw


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.dictionaries(PIDS, VALUES, max_size=4), TAGS), min_size=1, max_size=8),
    st.dictionaries(st.sampled_from(["car", "team"]), st.text(max_size=3), max_size=2),
)
def test_release_matches_the_row_loop(
    rows: list[tuple[dict[str, Any], dict[str, str] | None]], default_tags: dict[str, str]
) -> None:
    builders = [builder(1000 + i, values, tags) for i, (values, tags) in enumerate(rows)]
    plain: list[Row] = [(1000 + i, values, tags or {}) for i, (values, tags) in enumerate(rows)]
    want = expected(plain, default_tags)
    assert same(builders_to_raw(builders, default_tags), want)
    if all(tags is None for _, tags in rows):  # what a buffer that never saw a tag releases
        assert same(builders_to_raw(builders, default_tags, tagged=False), want)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
    st.integers(1, 30),
    st.sampled_from([float, int, str, bytes]),
)
def test_dense_rows_of_one_type_take_whole_columns(
    pids: list[str], count: int, kind: type[Any]
) -> None:
    """Every row with the same parameters (the fast path): one column per parameter."""
    makers: dict[type[Any], Callable[[int], Any]] = {
        float: float,
        int: int,
        str: str,
        bytes: lambda i: str(i).encode(),
    }
    make = makers[kind]
    builders = [builder(i, {p: make(i) for p in pids}, None) for i in range(count)]
    raw = builders_to_raw(builders)
    group = {float: raw.numeric_values, int: raw.numeric_values, str: raw.string_values}.get(
        kind, raw.binary_values
    )
    assert group == {p: [make(i) for i in range(count)] for p in pids}
    assert raw.timestamps == list(range(count))
    assert same(raw, expected([(i, {p: make(i) for p in pids}, {}) for i in range(count)], {}))


def test_booleans_become_floats_and_missing_cells_none() -> None:
    builders = [
        builder(1, {"on": True, "speed": 1}, {"car": "A"}),
        builder(2, {"speed": 2.5, "name": "x"}, None),
        builder(3, {"on": False, "blob": bytearray(b"\x00")}, None),
    ]
    flags = builders_to_raw([builder(1, {"on": True}, None), builder(2, {"on": False}, None)])
    assert [type(v) for v in flags.numeric_values["on"]] == [float, float]
    raw = builders_to_raw(builders, {"team": "red"})
    assert raw.numeric_values == {"on": [1.0, None, 0.0], "speed": [1, 2.5, None]}
    assert raw.string_values == {"name": [None, "x", None]}
    assert raw.binary_values == {"blob": [None, None, b"\x00"]}
    assert raw.tag_values == {"car": ["A", None, None], "team": ["red"] * 3}
    assert type(raw.numeric_values["on"][0]) is float


# -- publish(data): whole packets as column slices --------------------------------------------


class FakeStream:
    """What the buffer needs of its stream: the lock, and `_send` (collects the packets)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.sent: list[model.TimeseriesData] = []

    def _send(self, packet: model.TimeseriesData) -> None:
        self.sent.append(packet)


def new_buffer(
    packet_size: int | None, span: int | None, default_tags: dict[str, str]
) -> tuple[TimeseriesBufferProducer, FakeStream]:
    stream = FakeStream()
    buffer = TimeseriesBufferProducer(cast(Any, stream))
    buffer.packet_size = packet_size
    buffer.time_span_in_nanoseconds = span
    buffer.default_tags = dict(default_tags)
    return buffer, stream


def publish_row(
    buffer: TimeseriesBufferProducer, ns: int, values: dict[str, Any], tags: dict[str, str] | None
) -> None:
    row = buffer.add_timestamp_nanoseconds(ns)
    for pid, value in values.items():
        row.add_value(pid, value)
    if tags:
        row.add_tags(tags)
    row.publish()


ROWS = st.lists(st.tuples(st.dictionaries(PIDS, VALUES, max_size=4), TAGS), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    ROWS,
    st.integers(0, 12),
    st.one_of(st.integers(1, 5), st.sampled_from([100])),
    st.sampled_from([None, 3]),
    st.dictionaries(st.just("team"), st.text(max_size=3), max_size=1),
)
def test_publishing_data_gives_the_packets_of_its_rows_published_one_by_one(
    rows: list[tuple[dict[str, Any], dict[str, str] | None]],
    before: int,
    packet_size: int,
    span: int | None,
    default_tags: dict[str, str],
) -> None:
    """The first `before` rows are built one by one, the rest published as one TimeseriesData:
    the packets are those of every row built one by one (same cuts, same cells, same tags)."""
    before = min(before, len(rows))
    one_by_one, want = new_buffer(packet_size, span, default_tags)
    in_bulk, got = new_buffer(packet_size, span, default_tags)
    data = TimeseriesData()
    for i, (values, tags) in enumerate(rows):
        publish_row(one_by_one, 1000 + i, values, tags)
        if i < before:
            publish_row(in_bulk, 1000 + i, values, tags)
        else:
            row = data.add_timestamp_nanoseconds(1000 + i).add_tags(tags or {})
            for pid, value in values.items():
                row.add_value(pid, value)
    in_bulk.publish(data)
    one_by_one.flush()
    in_bulk.flush()
    assert [encode_sorted(p) for p in got.sent] == [encode_sorted(p) for p in want.sent]


def encode_sorted(packet: model.TimeseriesData) -> bytes:
    return msgspec.json.encode(packet, order="sorted")


def test_whole_packets_of_a_dataframe_go_out_as_column_slices() -> None:
    """packet_size 1,000 and 2,500 rows behind 300 waiting ones: the waiting packet is completed
    with 700 rows, then one packet of 1,000 goes out as a slice, 800 rows wait for the next."""
    buffer, stream = new_buffer(1000, None, {"team": "red"})
    for i in range(300):
        publish_row(buffer, i, {"speed": float(i)}, None)
    df = pd.DataFrame(
        {"timestamp": range(300, 2800), "speed": [float(i) for i in range(300, 2800)]}
    )
    taken_apart = []  # rows that joined the buffer one by one
    add_rows = buffer._add_rows

    def spy(raw: model.TimeseriesData, start: int, stop: int) -> None:
        taken_apart.append(stop - start)
        add_rows(raw, start, stop)

    buffer._add_rows = spy  # type: ignore[method-assign]
    buffer.publish(df)
    assert taken_apart == [700, 800]
    assert [len(p.timestamps) for p in stream.sent] == [1000, 1000]
    assert len(buffer._pending) // 3 == 800
    buffer.flush()
    assert [p.timestamps[0] for p in stream.sent] == [0, 1000, 2000]
    speeds = [v for p in stream.sent for v in p.numeric_values["speed"]]
    assert speeds == [float(i) for i in range(2800)]
    assert all(p.tag_values == {"team": ["red"] * len(p.timestamps)} for p in stream.sent)


def test_without_a_condition_published_data_goes_out_at_once_as_one_packet() -> None:
    buffer, stream = new_buffer(None, None, {})
    publish_row(buffer, 1, {"a": 1.0}, None)
    data = model.TimeseriesData(
        timestamps=[2, 3], numeric_values={"a": [2.0, None], "b": [None, None]}
    )
    buffer.publish(data)
    assert [p.timestamps for p in stream.sent] == [[1], [2, 3]]
    assert stream.sent[1].numeric_values == {"a": [2.0, None]}  # no column without a value


def test_published_data_is_validated_before_it_joins_the_buffer() -> None:
    buffer, stream = new_buffer(10, None, {})
    bad = model.TimeseriesData(timestamps=[1, 2], numeric_values={"a": [1.0]})
    with pytest.raises(ValidationError) as caught:
        buffer.publish(bad)
    assert caught.value.field == "numericValues.a"
    assert not buffer._pending and not stream.sent
