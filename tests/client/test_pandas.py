"""DataFrame -> timeseries with Quix's conventions, for the column dtypes pandas users hold.

Unit tests (no sockets) of ``dataframe_to_timeseries`` and its round trip through
``timeseries_to_dataframe``.
"""

from __future__ import annotations

import math

import numpy
import pandas as pd
import pytest

from streamport.client._pandas import (
    dataframe_to_timeseries,
    events_from_dataframe,
    timeseries_to_dataframe,
)
from streamport.errors import ValidationError


def test_numeric_dtypes_become_floats_and_gaps_no_value() -> None:
    df = pd.DataFrame(
        {
            "timestamp": [1, 2, 3],
            "f64": [0.5, math.nan, 2.5],
            "f32": numpy.array([0.25, 1.5, 3.0], dtype="float32"),
            "nullable": pd.array([1.5, None, 3.0], dtype="Float64"),
            "ints": [1, 2, 3],
            "nullable_ints": pd.array([None, 2, 3], dtype="Int64"),
            "flags": [True, False, True],
        }
    )
    raw = dataframe_to_timeseries(df)
    assert raw.timestamps == [1, 2, 3]
    assert raw.numeric_values == {
        "f64": [0.5, None, 2.5],
        "f32": [0.25, 1.5, 3.0],
        "nullable": [1.5, None, 3.0],
        "ints": [1.0, 2.0, 3.0],
        "nullable_ints": [None, 2.0, 3.0],
        "flags": [1.0, 0.0, 1.0],
    }
    for column in raw.numeric_values.values():
        assert {type(v) for v in column} <= {float, type(None)}


@pytest.mark.parametrize(
    ("column", "want"),
    [
        (pd.Series([10, 20], dtype="int64"), [10, 20]),
        (pd.Series([10, 20], dtype="uint64"), [10, 20]),
        (pd.Series([10.0, 20.0]), [10, 20]),
        (pd.array([10, 20], dtype="Int64"), [10, 20]),
        (pd.to_datetime([1_000, 2_000], unit="ns"), [1_000, 2_000]),
        (
            pd.to_datetime([1_000, 2_000], unit="ns", utc=True).tz_convert("Europe/Paris"),
            [1_000, 2_000],
        ),
    ],
)
def test_timestamps_of_each_kind_become_int_nanoseconds(column: object, want: list[int]) -> None:
    raw = dataframe_to_timeseries(pd.DataFrame({"timestamp": column, "v": [1.0, 2.0]}))
    assert raw.timestamps == want
    assert all(type(t) is int for t in raw.timestamps)


@pytest.mark.parametrize(
    "column",
    [
        pd.array([10, None], dtype="Int64"),
        [10.0, math.nan],
        ["10", "20"],
        pd.Series([pd.Timestamp(1_000), pd.NaT]),
    ],
)
def test_a_timestamp_column_with_gaps_or_text_is_refused(column: object) -> None:
    with pytest.raises(ValidationError) as caught:
        dataframe_to_timeseries(pd.DataFrame({"timestamp": column, "v": [1.0, 2.0]}))
    assert caught.value.field == "timestamp"


def test_a_column_name_twice_is_refused_naming_it() -> None:
    df = pd.DataFrame([[1, 1.0, 2.0]], columns=["timestamp", "v", "v"])
    with pytest.raises(ValidationError) as caught:
        dataframe_to_timeseries(df)
    assert caught.value.field == "v"


def test_without_a_timestamp_column_the_first_integer_column_is_the_time() -> None:
    raw = dataframe_to_timeseries(pd.DataFrame({"name": ["a", "b"], 7: [5, 6], "v": [1.0, 2.0]}))
    assert raw.timestamps == [5, 6]
    assert raw.string_values == {"name": ["a", "b"]}
    assert raw.numeric_values == {"v": [1.0, 2.0]}


def test_round_trip_keeps_numbers_strings_and_tags() -> None:
    df = pd.DataFrame(
        {
            "timestamp": [1, 2],
            "speed": [1.5, math.nan],
            "gear": ["3", None],
            "TAG__car": ["A", "B"],
        }
    )
    back = timeseries_to_dataframe(dataframe_to_timeseries(df))
    assert back["timestamp"].tolist() == [1, 2]
    assert back["speed"].tolist()[0] == 1.5 and math.isnan(back["speed"].tolist()[1])
    assert back["gear"].tolist()[0] == "3" and pd.isna(back["gear"].tolist()[1])
    assert back["TAG__car"].tolist() == ["A", "B"]


def test_events_from_a_dataframe_one_per_row_with_their_tags() -> None:
    df = pd.DataFrame(
        {
            "event": ["lap", "pit"],
            "timestamp": pd.to_datetime([1_000, 2_000], unit="ns"),
            "value": ["1", None],
            "TAG__car": ["A", None],
        }
    )
    events = events_from_dataframe(df, id="event")
    assert [(e.id, e.timestamp, e.value, e.tags) for e in events] == [
        ("lap", 1_000, "1", {"car": "A"}),
        ("pit", 2_000, "", {}),
    ]
    with pytest.raises(ValidationError) as caught:
        events_from_dataframe(df)
    assert caught.value.field == "id"
