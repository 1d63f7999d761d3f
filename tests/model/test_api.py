from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from streamport.errors import ValidationError
from streamport.model import (
    EventData,
    EventLevel,
    ParameterDefinition,
    StreamEnd,
    TimeseriesData,
    format_datetime,
    parse_event_data,
    parse_event_definitions,
    parse_parameter_data,
    parse_parameter_definitions,
    parse_stream_details,
    to_api,
)


def test_parameter_data_camel_and_pascal_bind_alike() -> None:
    camel = b'{"timestamps":[1,2],"numericValues":{"Speed":[1,null]},"stringValues":{"s":["a","b"]},"binaryValues":{"b":["aGk=",null]},"tagValues":{"Lap":["1",null]}}'
    pascal = b'{"Timestamps":[1,2],"NumericValues":{"Speed":[1,null]},"StringValues":{"s":["a","b"]},"BinaryValues":{"b":["aGk=",null]},"TagValues":{"Lap":["1",null]}}'
    expected = TimeseriesData(
        timestamps=[1, 2],
        numeric_values={"Speed": [1.0, None]},
        string_values={"s": ["a", "b"]},
        binary_values={"b": [b"hi", None]},
        tag_values={"Lap": ["1", None]},
    )
    assert parse_parameter_data(camel) == expected
    assert parse_parameter_data(pascal) == expected


def test_parameter_data_epoch_is_added_and_extra_fields_ignored() -> None:
    data = parse_parameter_data(
        {"Epoch": 1_000, "Timestamps": [1, 2], "numericValues": {"x": [1, 2]}, "junk": [1]}
    )
    assert data.epoch == 0
    assert data.timestamps == [1_001, 1_002]


def test_parameter_data_nulls_mean_absent() -> None:
    data = parse_parameter_data(b'{"timestamps":[1],"numericValues":{"x":[1]},"stringValues":null}')
    assert data.string_values == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"timestamps":[1,1.5]}', "timestamps[1]"),
        (b'{"timestamps":[1,"2"]}', "timestamps[1]"),
        (b'{"timestamps":[1,true]}', "timestamps[1]"),
        (b'{"timestamps":[1,2,3],"numericValues":{"speed":[1,2]}}', "numericValues.speed"),
        (b'{"timestamps":[1],"numericValues":{"ok":[1],"speed":["x"]}}', "numericValues.speed[0]"),
        (b'{"timestamps":[1],"binaryValues":{"img":["***"]}}', "binaryValues.img[0]"),
        (b'{"timestamps":[1],"numericValues":{"a/b":[1]}}', "numericValues.a/b"),
        (b'{"timestamps":[1],"stringValues":{"a\\\\b":["x"]}}', "stringValues.a\\b"),
        (b'{"numericValues":[1]}', "numericValues"),
        (b'{"Epoch":"1"}', "epoch"),
        (b'{"timestamps":[9223372036854775807],"epoch":1}', "timestamps"),
        (b"[1]", "body"),
        (b"{", "body"),
    ],
)
def test_parameter_data_errors_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_parameter_data(body)
    assert caught.value.field == field
    assert field in str(caught.value) or field == "body"


def test_mismatch_message_says_what_to_fix() -> None:
    with pytest.raises(
        ValidationError, match=re.escape("timestamps has 3 items but numericValues.speed has 2")
    ):
        parse_parameter_data(b'{"timestamps":[1,2,3],"numericValues":{"speed":[1,2]}}')


def test_event_data_array_or_single_object() -> None:
    body = b'[{"id":"Alert","timestamp":1618133869000000000,"value":"Help","tags":{"capacity":"over"}}]'
    expected = EventData(
        id="Alert", timestamp=1618133869000000000, value="Help", tags={"capacity": "over"}
    )
    assert parse_event_data(body) == [expected]
    assert parse_event_data(
        {
            "Id": "Alert",
            "Timestamp": 1618133869000000000,
            "Value": "Help",
            "Tags": {"capacity": "over"},
        }
    ) == [expected]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'[{"id":"a","timestamp":1},{"id":"b"}]', "[1].timestamp"),
        (b'[{"timestamp":1}]', "[0].id"),
        (b'[{"id":"a","timestamp":1.5}]', "[0].timestamp"),
        (b'[{"id":"a/b","timestamp":1}]', "[0].id"),
        (b'[{"id":"a","timestamp":1,"tags":{"k":1}}]', "[0].tags.k"),
        (b'{"id":"a","timestamp":1,"value":5}', "value"),
        (b"[1]", "[0]"),
        (b"5", "body"),
    ],
)
def test_event_data_errors_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event_data(body)
    assert caught.value.field == field


def test_stream_details() -> None:
    props = parse_stream_details(
        b'{"Name":"Car 1","location":"/sim/trials","Metadata":{"Driver":"Ann"},'
        b'"parents":["p1"],"TimeOfRecording":"2021-02-06T00:15:15Z"}'
    )
    assert props.name == "Car 1"
    assert props.location == "/sim/trials"
    assert props.metadata == {"Driver": "Ann"}
    assert props.parents == ["p1"]
    assert props.time_of_recording == datetime(2021, 2, 6, 0, 15, 15, tzinfo=UTC)
    assert parse_stream_details(b"{}").name is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"timeOfRecording":"yesterday"}', "timeOfRecording"),
        (b'{"metadata":{"a":1}}', "metadata.a"),
        (b'{"parents":"p"}', "parents"),
        (b'{"name":1}', "name"),
    ],
)
def test_stream_details_errors(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_stream_details(body)
    assert caught.value.field == field


def test_parameter_definitions_build_the_group_tree() -> None:
    defs = parse_parameter_definitions(
        b'[{"Id":"rpm","Name":"Engine RPM","MinimumValue":0,"MaximumValue":20000,"Unit":"rpm",'
        b'"CustomProperties":"{\\"OptimalMinimum\\": 30.0}","Location":"/chassis/engine"},'
        b'{"id":"temp","unit":"\xc2\xb0C","location":"/chassis/engine"},'
        b'{"id":"speed"},{"id":"gear","location":"/chassis"}]'
    )
    assert [group.name for group in defs.parameter_groups] == ["chassis"]
    chassis = defs.parameter_groups[0]
    assert [p.id for p in chassis.parameters] == ["gear"]
    assert [p.id for p in chassis.child_groups[0].parameters] == ["rpm", "temp"]
    assert [p.id for p in defs.parameters] == ["speed"]
    assert defs.flatten()[2] == (
        "/chassis/engine",
        ParameterDefinition(
            id="rpm",
            name="Engine RPM",
            minimum_value=0.0,
            maximum_value=20000.0,
            unit="rpm",
            custom_properties='{"OptimalMinimum": 30.0}',
        ),
    )


def test_parameter_definitions_wrapped_form_and_object_custom_properties() -> None:
    defs = parse_parameter_definitions({"parameters": [{"id": "x", "customProperties": {"a": 1}}]})
    assert defs.parameters[0].custom_properties == '{"a":1}'


def test_event_definitions_levels_by_name_or_number() -> None:
    defs = parse_event_definitions(
        b'[{"Id":"a","Level":"Critical","Location":"/drive/lap"},{"id":"b","level":1},{"id":"c"}]'
    )
    levels = {d.id: (loc, d.level) for loc, d in defs.flatten()}
    assert levels == {
        "a": ("/drive/lap", EventLevel.CRITICAL),
        "b": ("/", EventLevel.DEBUG),
        "c": ("/", EventLevel.INFORMATION),
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'[{"id":"a","level":"Loud"}]', "[0].level"),
        (b'[{"id":"a","level":6}]', "[0].level"),
        (b'[{"id":"a/b"}]', "[0].id"),
        (b'[{"name":"x"}]', "[0].id"),
        (b'{"id":"a"}', "body"),
    ],
)
def test_event_definitions_errors(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event_definitions(body)
    assert caught.value.field == field


def test_parameter_definition_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_parameter_definitions(b'[{"id":"a","minimumValue":"low"}]')
    assert caught.value.field == "[0].minimumValue"


def test_to_api_shapes() -> None:
    data = TimeseriesData(
        epoch=10, timestamps=[1], numeric_values={"x": [1.0]}, binary_values={"b": [b"hi"]}
    )
    assert to_api(data) == {
        "epoch": 0,
        "timestamps": [11],
        "numericValues": {"x": [1.0]},
        "stringValues": {},
        "tagValues": {},
        "binaryValues": {"b": ["aGk="]},
    }
    event = EventData(id="e", timestamp=5, value="v", tags={"t": "1"})
    assert to_api(event) == {"id": "e", "timestamp": 5, "value": "v", "tags": {"t": "1"}}
    assert to_api([event]) == [to_api(event)]
    props = parse_stream_details(b'{"name":"n","timeOfRecording":"2021-02-06T00:15:15Z"}')
    assert to_api(props)["timeOfRecording"] == "2021-02-06T00:15:15Z"
    assert to_api(StreamEnd()) == {"streamEndType": "Closed"}
    defs = parse_event_definitions(b'[{"id":"a","level":5,"location":"/x"}]')
    assert to_api(defs) == {
        "definitions": [
            {
                "id": "a",
                "name": None,
                "description": None,
                "customProperties": None,
                "level": "Critical",
                "location": "/x",
            }
        ]
    }


def test_format_datetime_naive_and_utc() -> None:
    assert format_datetime(datetime(2021, 1, 1, tzinfo=UTC)) == "2021-01-01T00:00:00Z"
    assert format_datetime(datetime(2021, 1, 1)) == "2021-01-01T00:00:00"
