from __future__ import annotations

import base64
import contextlib
import gzip
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamport.errors import CodecError
from streamport.model import (
    EventData,
    EventDefinitions,
    EventLevel,
    Message,
    ParameterDefinition,
    ParameterDefinitions,
    StreamEnd,
    StreamEndType,
    StreamProperties,
    TimeseriesData,
    decode,
    encode,
    encode_headers_form,
    encode_value,
    model_key,
)
from streamport.model.envelope import MAX_INFLATED_BYTES

from .strategies import events, messages, timeseries


def legacy(codec: str, key: str, value: bytes) -> bytes:
    """An envelope as quixstreams 3.x QuixSerializer(as_legacy=True) writes it."""
    head = f'{{"C":"{codec}","K":"{key}","V":'.encode()
    return head + value + f',"S":{len(head)},"E":{len(head) + len(value)}}}'.encode()


# ---------------------------------------------------------------------------------------------
# Golden bytes


def test_encode_parameter_data_golden_bytes() -> None:
    data = TimeseriesData(
        timestamps=[1, 2],
        numeric_values={"speed": [10.5, None]},
        binary_values={"img": [b"hi", None]},
        tag_values={"lap": ["1", "1"]},
    )
    assert encode(data) == (
        b'{"C":"JT","K":"ParameterData","V":{"Epoch":0,"Timestamps":[1,2],'
        b'"NumericValues":{"speed":[10.5,null]},"StringValues":{},'
        b'"BinaryValues":{"img":["aGk=",null]},"TagValues":{"lap":["1","1"]}},"S":34,"E":187}'
    )


def test_envelope_start_and_end_are_byte_offsets_of_v() -> None:
    data = TimeseriesData(timestamps=[1], string_values={"señal": ["ñandú €"]})
    value = encode(data)
    envelope = json.loads(value)
    assert envelope["S"] == 34  # as in the spec example for ParameterData
    assert value[envelope["S"] : envelope["E"]] == encode_value(data)
    assert json.loads(value[envelope["S"] : envelope["E"]]) == envelope["V"]


def test_encode_event_data_golden_bytes() -> None:
    event = EventData(id="Alert", timestamp=1618133869000000000, value="Help", tags={"a": "b"})
    assert encode(event) == (
        b'{"C":"JT","K":"EventData","V":{"Timestamp":1618133869000000000,"Tags":{"a":"b"},'
        b'"Id":"Alert","Value":"Help"},"S":30,"E":108}'
    )
    assert encode([event]).startswith(b'{"C":"JT","K":"EventData[]","V":[{"Timestamp":')


def test_encode_stream_end_and_properties_golden_bytes() -> None:
    assert encode(StreamEnd(stream_end_type=StreamEndType.ABORTED)) == (
        b'{"C":"JT","K":"StreamEnd","V":{"StreamEndType":"Aborted"},"S":30,"E":57}'
    )
    props = StreamProperties(name="car", location="/a", metadata={"k": "v"}, parents=["p"])
    assert encode_value(props) == (
        b'{"Name":"car","Location":"/a","Metadata":{"k":"v"},"Parents":["p"],'
        b'"TimeOfRecording":null}'
    )


def test_encode_writes_epoch_zero_with_absolute_timestamps() -> None:
    data = TimeseriesData(epoch=1000, timestamps=[1, 2], numeric_values={"x": [1.0, 2.0]})
    decoded = decode(encode(data))
    assert decoded == TimeseriesData(timestamps=[1001, 1002], numeric_values={"x": [1.0, 2.0]})


def test_encode_headers_form() -> None:
    value, headers = encode_headers_form(EventData(id="a", timestamp=5))
    assert value == b'{"Timestamp":5,"Tags":{},"Id":"a","Value":""}'
    assert headers == (("__Q_ModelKey", b"EventData"), ("__Q_CodecId", b"JT"))


def test_model_keys() -> None:
    assert model_key(TimeseriesData()) == "ParameterData"
    assert model_key([]) == "EventData[]"
    assert model_key(ParameterDefinitions()) == "ParameterDefinitions"
    assert model_key(EventDefinitions()) == "EventDefinitions"


# ---------------------------------------------------------------------------------------------
# Reading what others write


def test_decode_spec_example_shape() -> None:
    v = b'{"Timestamps":[1,2],"NumericValues":{"speed":[1,2.5]}}'
    assert decode(legacy("JT", "ParameterData", v)) == TimeseriesData(
        timestamps=[1, 2], numeric_values={"speed": [1.0, 2.5]}
    )


def test_decode_quixstreams_3_timeseries_legacy_body() -> None:
    # QuixTimeseriesSerializer output for
    # {"a": 1, "b": 1.1, "c": "string", "d": b"bytes", "Tags": {"t": "x"}, "Timestamp": 123}
    v = (
        b'{"BinaryValues":{"d":["Ynl0ZXM="]},"StringValues":{"c":["string"]},'
        b'"NumericValues":{"a":[1],"b":[1.1]},"Timestamps":[123],"TagValues":{"t":["x"]}}'
    )
    expected = TimeseriesData(
        timestamps=[123],
        numeric_values={"a": [1.0], "b": [1.1]},
        string_values={"c": ["string"]},
        binary_values={"d": [b"bytes"]},
        tag_values={"t": ["x"]},
    )
    assert decode(legacy("JT", "ParameterData", v)) == expected
    # the same serializer with as_legacy=False: plain JSON and two headers
    headers = (("__Q_ModelKey", b"TimeseriesData"), ("__Q_CodecId", b"JT"))
    assert decode(v, headers) == expected


def test_decode_quixstreams_3_events() -> None:
    v = b'{"Id":"an_event","Value":"any_string","Tags":{"tag1":"tag"},"Timestamp":1692703362840389000}'
    expected = EventData(
        id="an_event", value="any_string", tags={"tag1": "tag"}, timestamp=1692703362840389000
    )
    assert decode(legacy("JT", "EventData", v)) == expected
    assert decode(v, (("__Q_ModelKey", b"EventData"), ("__Q_CodecId", b"JT"))) == expected


def test_decode_event_list_and_single() -> None:
    v = b'[{"Id":"a","Timestamp":1},{"Id":"b","Timestamp":2,"Value":"x"}]'
    assert decode(legacy("JT", "EventData[]", v)) == [
        EventData(id="a", timestamp=1),
        EventData(id="b", timestamp=2, value="x"),
    ]


def test_decode_legacy_envelope_with_other_key_order_metadata_and_codec_j() -> None:
    value = b'{"V":{"Timestamps":[7],"NumericValues":{"x":[1]}},"M":{"a":"b"},"K":"ParameterData","C":"J"}'
    assert decode(value) == TimeseriesData(timestamps=[7], numeric_values={"x": [1.0]})


def test_decode_legacy_value_as_base64_string() -> None:
    model = b'{"Id":"a","Timestamp":1}'
    value = json.dumps({"C": "JT", "K": "EventData", "V": base64.b64encode(model).decode()})
    assert decode(value.encode()) == EventData(id="a", timestamp=1)


def test_decode_gzip_legacy_and_headers() -> None:
    model = encode_value(EventData(id="a", timestamp=1))
    packed = gzip.compress(model)
    value = json.dumps({"C": "[GZIP]JT", "K": "EventData", "V": base64.b64encode(packed).decode()})
    assert decode(value.encode()) == EventData(id="a", timestamp=1)
    headers = (("__Q_ModelKey", b"EventData"), ("__Q_CodecId", b"[GZIP]JT"))
    assert decode(packed, headers) == EventData(id="a", timestamp=1)


def test_decode_stream_end_as_number_and_definitions_level_as_number() -> None:
    assert decode(legacy("JT", "StreamEnd", b'{"StreamEndType":2}')) == StreamEnd(
        stream_end_type=StreamEndType.TERMINATED
    )
    assert decode(legacy("JT", "StreamEnd", b"{}")) == StreamEnd()
    v = b'{"EventGroups":[{"Name":"g","Events":[{"Id":"e","Level":3}]}]}'
    defs = decode(legacy("JT", "EventDefinitions", v))
    assert isinstance(defs, EventDefinitions)
    assert defs.flatten()[0][0] == "/g"
    assert defs.flatten()[0][1].level is EventLevel.WARNING


def test_decode_parameter_definitions_tree() -> None:
    v = (
        b'{"ParameterGroups":[{"Name":"chassis","ChildGroups":[{"Name":"engine",'
        b'"Parameters":[{"Id":"rpm","Unit":"rpm","MinimumValue":0}]}]}],'
        b'"Parameters":[{"Id":"speed"}]}'
    )
    defs = decode(legacy("JT", "ParameterDefinitions", v))
    assert isinstance(defs, ParameterDefinitions)
    assert defs.flatten() == [
        ("/", ParameterDefinition(id="speed")),
        ("/chassis/engine", ParameterDefinition(id="rpm", unit="rpm", minimum_value=0.0)),
    ]


# ---------------------------------------------------------------------------------------------
# What cannot be read


@pytest.mark.parametrize(
    ("value", "headers", "words"),
    [
        (b"", (), "empty"),
        (b"<\x00\x00\x00\x01\x00\x02>{", (), "split"),
        (b'{"Id":"a"}', (("__Q_SplitMessageId", b"1"), ("__Q_ModelKey", b"EventData")), "split"),
        (b"\x01\x01\x02PB", (), "binary"),
        (legacy("PB", "ParameterData", b'"AAE="'), (), "codec 'PB'"),
        (legacy("JT-PaDa-1", "ParameterData", b"{}"), (), "codec 'JT-PaDa-1'"),
        (legacy("JT", "Mystery", b"{}"), (), "model key 'Mystery'"),
        (b"{}", (("__Q_ModelKey", b"EventData"),), "__Q_CodecId"),
        (b"hello", (), "not a Quix message"),
        (b'{"C":"JT","K":"EventData"}', (), "envelope"),
        (legacy("[GZIP]JT", "EventData", b"{}"), (), "base64"),
        (legacy("[GZIP]JT", "EventData", b'"aGVsbG8="'), (), "gzip"),
        (legacy("JT", "ParameterData", b'{"Timestamps":[1],"NumericValues":{"x":[]}}'), (), "x"),
        (legacy("JT", "ParameterData", b'{"Timestamps":[1.5]}'), (), "Timestamps"),
        (legacy("JT", "EventData", b'{"Id":"a/b"}'), (), "a/b"),
        (legacy("JT", "EventDefinitions", b'{"Events":[{"Id":"e","Level":9}]}'), (), "level"),
        (b'{"C":"JT","K":"EventData","V":{"Id":"a",', (), "not a valid"),
    ],
)
def test_decode_refuses_with_a_clear_codec_error(
    value: bytes, headers: tuple[tuple[str, bytes], ...], words: str
) -> None:
    with pytest.raises(CodecError, match="(?i)" + words.replace("[", r"\[").replace("(", r"\(")):
        decode(value, headers)


def test_decode_refuses_a_gzip_bomb() -> None:
    bomb = gzip.compress(b" " * (MAX_INFLATED_BYTES + 1), compresslevel=1)
    headers = (("__Q_ModelKey", b"EventData"), ("__Q_CodecId", b"[GZIP]JT"))
    with pytest.raises(CodecError, match="larger than"):
        decode(bomb, headers)


# ---------------------------------------------------------------------------------------------
# Properties


@given(messages)
def test_decode_inverts_encode(message: Message) -> None:
    assert decode(encode(message)) == message


@given(messages)
def test_decode_inverts_encode_headers_form(message: Message) -> None:
    value, headers = encode_headers_form(message)
    assert decode(value, headers) == message


@given(messages)
def test_envelope_slice_is_the_model_json(message: Message) -> None:
    value = encode(message)
    envelope = msgspec.json.decode(value)
    assert value[envelope["S"] : envelope["E"]] == encode_value(message)


@given(timeseries(), st.integers(min_value=-(10**12), max_value=10**12))
def test_epoch_is_folded_into_timestamps(data: TimeseriesData, epoch: int) -> None:
    if any(not -(2**62) < t < 2**62 for t in data.timestamps):
        return
    shifted = TimeseriesData(
        epoch=epoch,
        timestamps=[t - epoch for t in data.timestamps],
        numeric_values=data.numeric_values,
        string_values=data.string_values,
        binary_values=data.binary_values,
        tag_values=data.tag_values,
    )
    assert decode(encode(shifted)) == data


@settings(max_examples=500)
@given(st.binary(max_size=200), st.sampled_from([(), (("__Q_ModelKey", b"EventData"),)]))
def test_arbitrary_bytes_raise_only_codec_error(
    value: bytes, headers: tuple[tuple[str, bytes], ...]
) -> None:
    with contextlib.suppress(CodecError):
        decode(value, (*headers, ("__Q_CodecId", b"JT")) if headers else ())


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_keys = st.sampled_from(
    [
        "ParameterData",
        "TimeseriesData",
        "EventData",
        "EventData[]",
        "StreamProperties",
        "StreamEnd",
        "ParameterDefinitions",
        "EventDefinitions",
        "Other",
    ]
)


@settings(max_examples=500)
@given(_keys, st.sampled_from(["J", "JT", "[GZIP]JT", "PB"]), _json_values)
def test_arbitrary_json_models_raise_only_codec_error(key: str, codec: str, model: object) -> None:
    value = legacy(codec, key, msgspec.json.encode(model))
    with contextlib.suppress(CodecError):
        decode(value)


@settings(max_examples=300)
@given(messages, st.data())
def test_corrupted_envelopes_raise_only_codec_error(message: Message, data: st.DataObject) -> None:
    value = bytearray(encode(message))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        index = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
        value[index] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(value)))
    with contextlib.suppress(CodecError):
        decode(bytes(value[:cut]))


@given(events)
def test_event_header_form_equals_legacy_form(event: EventData) -> None:
    value, headers = encode_headers_form(event)
    assert decode(value, headers) == decode(encode(event))


def test_decode_bytes_captured_from_quixstreams_3_25() -> None:
    # QuixTimeseriesSerializer()({"a": 1, "b": 1.1, "c": "s", "d": b"by", "Tags": {"t": "x"},
    # "Timestamp": 123}) and QuixEventsSerializer() output, byte for byte.
    timeseries_value = (
        b'{"C":"JT","K":"ParameterData","V":{"BinaryValues":{"d":["Ynk="]},'
        b'"StringValues":{"c":["s"]},"NumericValues":{"a":[1],"b":[1.1]},"Timestamps":[123],'
        b'"TagValues":{"t":["x"]}},"S":34,"E":171}'
    )
    assert decode(timeseries_value) == TimeseriesData(
        timestamps=[123],
        numeric_values={"a": [1.0], "b": [1.1]},
        string_values={"c": ["s"]},
        binary_values={"d": [b"by"]},
        tag_values={"t": ["x"]},
    )
    event_value = (
        b'{"C":"JT","K":"EventData","V":{"Id":"e","Value":"v","Tags":{"a":"b"},"Timestamp":9},'
        b'"S":30,"E":83}'
    )
    assert decode(event_value) == EventData(id="e", value="v", tags={"a": "b"}, timestamp=9)
