"""The spliced ParameterData envelope agrees with the exact path on every body, good or bad."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamport.errors import ValidationError
from streamport.model import (
    TimeseriesData,
    decode,
    encode,
    parameter_data_envelope,
    parse_parameter_data,
)
from tests.model.strategies import timeseries

BODY = b'{"timestamps":[1,2,3],"numericValues":{"v":[1.50,null,-0.25],"w":[2.0,3.0,4.0]}}'


def outcome(make: object) -> object:
    """What a body turns into: the decoded message, or the field of its ValidationError."""
    assert callable(make)
    try:
        return decode(make())
    except ValidationError as exc:
        return ("error", exc.field)


def agree(body: bytes) -> None:
    exact = outcome(lambda: encode(parse_parameter_data(body)))
    assert outcome(lambda: parameter_data_envelope(body)) == exact


def test_number_text_of_the_body_is_kept() -> None:
    value = parameter_data_envelope(BODY)
    # Spliced, not re-encoded: the exact path would write 1.5.
    assert b'"NumericValues":{"v":[1.50,null,-0.25],"w":[2.0,3.0,4.0]}' in value
    assert decode(value) == TimeseriesData(
        timestamps=[1, 2, 3],
        numeric_values={"v": [1.5, None, -0.25], "w": [2.0, 3.0, 4.0]},
    )
    envelope = msgspec.json.decode(value)
    start, end = envelope["S"], envelope["E"]
    assert msgspec.json.decode(value[start:end]) == envelope["V"]


def test_pascal_case_bodies_are_spliced_too() -> None:
    pascal = BODY.replace(b"timestamps", b"Timestamps").replace(b"numericValues", b"NumericValues")
    assert parameter_data_envelope(pascal) == parameter_data_envelope(BODY)
    assert b"[1.50,null,-0.25]" in parameter_data_envelope(pascal)


def test_same_bytes_as_the_exact_path_for_bodies_it_would_write() -> None:
    data = TimeseriesData(
        timestamps=[1_700_000_000_000_000_000 + i for i in range(50)],
        numeric_values={f"p{j}": [i * 0.5 + j for i in range(50)] for j in range(3)},
        string_values={"s": ["x"] * 50},
        tag_values={"t": ["a", None] * 25},
    )
    body = msgspec.json.encode(
        {
            "timestamps": data.timestamps,
            "numericValues": data.numeric_values,
            "stringValues": data.string_values,
            "tagValues": data.tag_values,
        }
    )
    assert parameter_data_envelope(body) == encode(data)


@pytest.mark.parametrize(
    ("column", "wire"),
    [
        (b"[1,2.5]", b"[1.0,2.5]"),  # integers become floats, as on the exact path
        (b"[1e2,2.5]", b"[100.0,2.5]"),
        (b"[1.5E-1,2.5]", b"[0.15,2.5]"),
    ],
)
def test_integers_and_exponents_take_the_exact_path(column: bytes, wire: bytes) -> None:
    body = b'{"timestamps":[1,2],"numericValues":{"v":' + column + b"}}"
    assert b'"NumericValues":{"v":' + wire + b"}" in parameter_data_envelope(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"Timestamps":[1],"numericValues":{"v":[1.5]}}',  # mixed
        b'{"timestamps":[1],"NUMERICVALUES":{"v":[1.5]}}',
        b'{"timestamps":[1],"numericValues":{"v":[1.5]},"epoch":10}',
        b'{"timestamps":[1],"numericValues":{"v":[1.5]},"extra":{"x":[1]}}',
        b'{"timestamps":[1,2],"numericValues":{"v":[1.5]}}',
        b'{"timestamps":[1],"numericValues":{"v":[1.5,2.5]}}',
        b'{"timestamps":[1],"numericValues":{"v":[[1.5]]}}',
        b'{"timestamps":[1],"numericValues":{"v":["1.5"]}}',
        b'{"timestamps":[1],"numericValues":{"v":[true]}}',
        b'{"timestamps":[1],"numericValues":{"v":[{}]}}',
        b'{"timestamps":[1],"numericValues":{"v":null}}',
        b'{"timestamps":[1],"numericValues":{"v":1.5}}',
        b'{"timestamps":[1],"numericValues":{"a/b":[1.5]}}',
        b'{"timestamps":[1],"stringValues":{"a\\\\b":["x"]}}',
        b'{"timestamps":[1],"stringValues":{"s":["x","y"]}}',
        b'{"timestamps":[1],"tagValues":{"t":[]}}',
        b'{"timestamps":[1],"binaryValues":{"b":["***"]}}',
        b'{"timestamps":[1.5],"numericValues":{"v":[1.5]}}',
        b'{"timestamps":[null],"numericValues":{"v":[1.5]}}',
        b'{"timestamps":[9223372036854775808],"numericValues":{"v":[1.5]}}',
        b'{"timestamps":[-9223372036854775809]}',
        b'{"timestamps":[9223372036854775807,-9223372036854775808]}',
        b'{"timestamps":[],"numericValues":{"v":[]}}',
        b'{"timestamps":[ 1 , 2 ],"numericValues":{"v":[ 1.5 ,\n null ]}}',
        b'{"timestamps":null}',
        b'{"numericValues":{"v":[1.5]}}',
        b"{}",
        b"[]",
        b"{",
        b'{"timestamps":[1],"numericValues":{"v":[1.5,]}}',
        b'{"timestamps":[1],"numericValues":{"v":[1..5]}}',
    ],
)
def test_agrees_with_the_exact_path(body: bytes) -> None:
    agree(body)


def test_decoded_bodies_take_the_exact_path() -> None:
    body = {"timestamps": [1], "numericValues": {"v": [2]}}
    assert parameter_data_envelope(body) == encode(parse_parameter_data(body))


def camel_body(data: TimeseriesData) -> bytes:
    return msgspec.json.encode(
        {
            "timestamps": data.timestamps,
            "numericValues": data.numeric_values,
            "stringValues": data.string_values,
            "binaryValues": data.binary_values,
            "tagValues": data.tag_values,
        }
    )


@given(timeseries())
def test_agrees_on_any_valid_data(data: TimeseriesData) -> None:
    agree(camel_body(data))


number_text = st.sampled_from(
    [b"1", b"-2", b"1.5", b"-0.0", b"null", b"1e3", b"2.5E-2", b'"x"', b"true", b"[]", b"{}"]
)


@given(
    st.lists(st.integers(min_value=-(2**64), max_value=2**64), max_size=4),
    st.dictionaries(st.sampled_from(["a", "b", "c/d"]), st.lists(number_text, max_size=5)),
)
def test_agrees_on_mixed_columns(timestamps: list[int], columns: dict[str, list[bytes]]) -> None:
    numeric = b",".join(b'"%s":[%s]' % (k.encode(), b",".join(v)) for k, v in columns.items())
    body = b'{"timestamps":%s,"numericValues":{%s}}' % (msgspec.json.encode(timestamps), numeric)
    agree(body)
