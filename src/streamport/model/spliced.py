"""ParameterData body -> envelope bytes, reusing the body's own number text where that is safe.

Decoding 5,000 floats into Python and encoding them again is most of the cost of a batched
``parameters/data`` write (about 0.6 ms of a 49 KB body); the numbers themselves do not change
on the way. :func:`parameter_data_envelope` lets msgspec check the JSON syntax of the whole body
(skipping the value columns as ``Raw``), proves with one ``bytes.translate`` per column that each
numeric column is a flat array of floats and nulls of the right length, and splices the column
text into the envelope unchanged. Any doubt - field names neither all camelCase nor all
PascalCase, an integer or exponent in a numeric column, a non-zero epoch, unknown fields - takes
the exact path (:func:`~streamport.model.api.parse_parameter_data` then
:func:`~streamport.model.envelope.encode`), which also produces the error naming the bad field.
Either path yields a value that decodes to the same :class:`~streamport.model.data.TimeseriesData`.

Example::

    value = parameter_data_envelope(b'{"timestamps":[1,2],"numericValues":{"v":[1.5,null]}}')
    assert decode(value) == TimeseriesData(timestamps=[1, 2], numeric_values={"v": [1.5, None]})
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec

from streamport.model.api import parse_parameter_data
from streamport.model.data import INT64_MAX, INT64_MIN
from streamport.model.envelope import encode

__all__ = ["parameter_data_envelope"]


_Timestamp = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]

# A ParameterData body whose numeric columns stay undecoded, in camelCase (as Quix documents it)
# and in PascalCase (as the Quix samples send it). Timestamps that are not int64 integers fail the
# decode, and the body takes the exact path (which names the field).
_COLUMNS: list[tuple[str, Any, Any]] = [
    ("epoch", int | None, None),
    ("timestamps", list[_Timestamp] | None, None),
    ("numeric_values", dict[str, msgspec.Raw] | None, None),
    ("string_values", dict[str, list[str | None]] | None, None),
    ("binary_values", dict[str, list[bytes | None]] | None, None),
    ("tag_values", dict[str, list[str | None]] | None, None),
]


class _Wire(msgspec.Struct, rename="pascal"):
    """The field order and names of TimeseriesData on the wire, with raw columns."""

    epoch: int
    timestamps: list[int]
    numeric_values: dict[str, msgspec.Raw]
    string_values: dict[str, list[str | None]]
    binary_values: dict[str, list[bytes | None]]
    tag_values: dict[str, list[str | None]]


# A body in the other case fails at its first field name, so trying both costs little.
_columns = [
    msgspec.json.Decoder(
        msgspec.defstruct("Columns", _COLUMNS, rename=case, forbid_unknown_fields=True)
    )
    for case in ("camel", "pascal")
]
_encoder = msgspec.json.Encoder()
_HEAD = b'{"C":"JT","K":"ParameterData","V":'


def parameter_data_envelope(body: object) -> bytes:
    """The envelope :func:`encode` writes for the ParameterData `body` (JSON bytes or a decoded
    value); raise :class:`~streamport.errors.ValidationError` naming the field for bad input."""
    value = _spliced(body) if isinstance(body, bytes) else None
    if value is None:
        return encode(parse_parameter_data(body))
    start = len(_HEAD)
    return b'%s%s,"S":%d,"E":%d}' % (_HEAD, value, start, start + len(value))


def _spliced(body: bytes) -> bytes | None:
    """The model JSON with the body's column text spliced in, or None to take the exact path."""
    columns: Any
    for decoder in _columns:
        try:
            columns = decoder.decode(body)
            break
        except msgspec.DecodeError:
            pass
    else:
        return None
    if columns.epoch or not columns.timestamps:
        return None
    count = len(columns.timestamps)
    numeric = columns.numeric_values or {}
    strings = columns.string_values or {}
    binaries = columns.binary_values or {}
    tags = columns.tag_values or {}
    if not all(_floats(bytes(values), count) for values in numeric.values()):
        return None
    if any(
        len(values) != count for group in (strings, binaries, tags) for values in group.values()
    ):
        return None
    if any("/" in pid or "\\" in pid for group in (numeric, strings, binaries) for pid in group):
        return None
    return _encoder.encode(_Wire(0, columns.timestamps, numeric, strings, binaries, tags))


_NUMBER_BODY = b"0123456789- \t\r\n"  # what a float's text is made of, but its point


@functools.lru_cache(maxsize=64)
def _shape(count: int) -> bytes:
    """``[.,.,.]``: a flat array of `count` floats once `_NUMBER_BODY` is deleted."""
    return b"[" + b",".join([b"."] * count) + b"]"


def _floats(text: bytes, count: int) -> bool:
    """Whether the JSON value `text` (its syntax already checked) is a flat array of `count`
    floats written with a decimal point, and nulls.

    Deleting digits, signs and whitespace leaves ``.`` of each float and ``null`` of each null;
    with the nulls made points too, it must be exactly `_shape`: anything else (a string, an
    object, true or false, an exponent's e, an integer without a point, a nested array, another
    count) leaves something else. A valid JSON value made of these characters with one point per
    element is a float in plain decimal notation, which reads back as a float in any JSON reader,
    as it would after decoding and encoding; everything else takes the exact path.
    """
    rest = text.translate(None, _NUMBER_BODY)
    if b"n" in rest:
        rest = rest.replace(b"null", b".")
    return rest == _shape(count)
