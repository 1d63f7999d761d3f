"""The producer buffer's release: the columnar fast path gives what the row-by-row path gives.

Unit tests (no sockets): ``builders_to_raw`` (the buffer's release) against ``rows_to_raw``
(the straightforward row loop that ``TimeseriesData.to_raw`` uses) on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streamport import model
from streamport.client._buffer import TimeseriesDataBuilder, builders_to_raw
from streamport.client._data import Row, rows_to_raw

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
