from __future__ import annotations

import pytest

from streamport.errors import ValidationError
from streamport.model import (
    EventData,
    EventDefinition,
    EventDefinitions,
    EventLevel,
    ParameterDefinition,
    ParameterDefinitions,
    TimeseriesData,
    normalize_location,
)


def test_validate_names_the_misaligned_column() -> None:
    data = TimeseriesData(timestamps=[1, 2, 3], numeric_values={"speed": [1.0, 2.0]})
    with pytest.raises(ValidationError) as caught:
        data.validate()
    assert caught.value.field == "numericValues.speed"
    assert caught.value.message == "timestamps has 3 items but numericValues.speed has 2"


@pytest.mark.parametrize("pid", ["a/b", "a\\b"])
def test_validate_refuses_ids_with_slashes(pid: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TimeseriesData(timestamps=[1], binary_values={pid: [b""]}).validate()
    assert caught.value.field == f"binaryValues.{pid}"
    with pytest.raises(ValidationError):
        EventData(id=pid, timestamp=1).validate()


def test_tag_names_may_hold_slashes() -> None:
    TimeseriesData(timestamps=[1], tag_values={"a/b": ["x"]}).validate()


def test_validate_refuses_timestamps_beyond_int64() -> None:
    with pytest.raises(ValidationError) as caught:
        TimeseriesData(epoch=1, timestamps=[2**63 - 1]).validate()
    assert caught.value.field == "timestamps"


def test_absolute_and_parameter_kinds() -> None:
    data = TimeseriesData(
        epoch=5,
        timestamps=[1],
        numeric_values={"n": [1.0]},
        string_values={"s": ["x"]},
        binary_values={"b": [b"x"]},
        tag_values={"t": ["x"]},
    )
    assert data.absolute().timestamps == [6]
    assert data.absolute().epoch == 0
    assert data.parameter_ids() == {"n": "Numeric", "s": "String", "b": "Binary"}


def test_definition_tree_round_trip() -> None:
    pairs = [
        ("/", ParameterDefinition(id="a")),
        ("/x/y", ParameterDefinition(id="b")),
        ("/x", ParameterDefinition(id="c")),
        ("/x/y", ParameterDefinition(id="d")),
    ]
    defs = ParameterDefinitions.from_flat(pairs)
    assert len(defs.parameter_groups) == 1
    assert defs.flatten() == [pairs[0], pairs[2], pairs[1], pairs[3]]
    events = EventDefinitions.from_flat(
        [(None, EventDefinition(id="e")), ("a//b/", EventDefinition(id="f"))]
    )
    assert [loc for loc, _ in events.flatten()] == ["/", "/a/b"]


def test_event_level_parse() -> None:
    assert EventLevel.parse("warning") is EventLevel.WARNING
    assert EventLevel.parse(0) is EventLevel.TRACE
    assert EventLevel.parse(EventLevel.ERROR) is EventLevel.ERROR
    for bad in (True, -1, 6, "loud", None, 1.0):
        with pytest.raises(ValidationError):
            EventLevel.parse(bad)


def test_normalize_location() -> None:
    assert normalize_location(None) == "/"
    assert normalize_location("") == "/"
    assert normalize_location("a/b/") == "/a/b"
