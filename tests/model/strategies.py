"""Hypothesis strategies for every model of a Quix topic message."""

from __future__ import annotations

from datetime import UTC

from hypothesis import strategies as st

from streamport.model import (
    EventData,
    EventDefinition,
    EventDefinitions,
    EventLevel,
    ParameterDefinition,
    ParameterDefinitions,
    StreamEnd,
    StreamEndType,
    StreamProperties,
    TimeseriesData,
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ids = st.text(max_size=12).filter(lambda s: "/" not in s and "\\" not in s)
texts = st.text(max_size=20)
opt_texts = st.none() | texts
floats = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def timeseries(draw: st.DrawFn) -> TimeseriesData:
    count = draw(st.integers(min_value=0, max_value=6))
    column = lambda values: st.dictionaries(  # noqa: E731
        ids, st.lists(st.none() | values, min_size=count, max_size=count), max_size=3
    )
    return TimeseriesData(
        timestamps=draw(st.lists(INT64, min_size=count, max_size=count)),
        numeric_values=draw(column(floats)),
        string_values=draw(column(texts)),
        binary_values=draw(column(st.binary(max_size=10))),
        tag_values=draw(column(texts)),
    )


events = st.builds(
    EventData,
    id=ids,
    timestamp=INT64,
    value=texts,
    tags=st.dictionaries(texts, texts, max_size=3),
)

properties = st.builds(
    StreamProperties,
    name=opt_texts,
    location=opt_texts,
    metadata=st.dictionaries(texts, texts, max_size=3),
    parents=st.lists(texts, max_size=3),
    time_of_recording=st.none() | st.datetimes(timezones=st.none() | st.just(UTC)),
)

stream_ends = st.builds(StreamEnd, stream_end_type=st.sampled_from(StreamEndType))

locations = st.none() | st.lists(
    st.text(alphabet="abcxyz", min_size=1, max_size=3), max_size=3
).map(lambda parts: "/" + "/".join(parts))

parameter_definitions = st.lists(
    st.tuples(
        locations,
        st.builds(
            ParameterDefinition,
            id=ids,
            name=opt_texts,
            description=opt_texts,
            minimum_value=st.none() | floats,
            maximum_value=st.none() | floats,
            unit=opt_texts,
            format=opt_texts,
            custom_properties=opt_texts,
        ),
    ),
    max_size=5,
).map(ParameterDefinitions.from_flat)

event_definitions = st.lists(
    st.tuples(
        locations,
        st.builds(
            EventDefinition,
            id=ids,
            name=opt_texts,
            description=opt_texts,
            custom_properties=opt_texts,
            level=st.sampled_from(EventLevel),
        ),
    ),
    max_size=5,
).map(EventDefinitions.from_flat)

messages = st.one_of(
    timeseries(),
    events,
    st.lists(events, max_size=4),
    properties,
    stream_ends,
    parameter_definitions,
    event_definitions,
)
