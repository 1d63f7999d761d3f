"""The stream data model and the Quix message codecs. Pure: no I/O.

* :mod:`~streamport.model.data` - ``TimeseriesData``, ``EventData``, ``StreamProperties``,
  ``StreamEnd``;
* :mod:`~streamport.model.definitions` - parameter and event definitions (group trees);
* :mod:`~streamport.model.envelope` - ``encode`` / ``decode`` of Kafka message values;
* :mod:`~streamport.model.api` - Writer API bodies -> models, models -> Reader API payloads;
* :mod:`~streamport.model.spliced` - a ParameterData body straight to its envelope.
"""

from streamport.model.api import (
    format_datetime,
    parse_event_data,
    parse_event_definitions,
    parse_parameter_data,
    parse_parameter_definitions,
    parse_stream_details,
    to_api,
)
from streamport.model.data import (
    EventData,
    StreamEnd,
    StreamEndType,
    StreamProperties,
    TimeseriesData,
)
from streamport.model.definitions import (
    EventDefinition,
    EventDefinitions,
    EventGroup,
    EventLevel,
    ParameterDefinition,
    ParameterDefinitions,
    ParameterGroup,
    normalize_location,
)
from streamport.model.envelope import decode, encode, encode_headers_form, encode_value
from streamport.model.message import MODEL_KEYS, Message, model_key
from streamport.model.spliced import parameter_data_envelope

__all__ = [
    "MODEL_KEYS",
    "EventData",
    "EventDefinition",
    "EventDefinitions",
    "EventGroup",
    "EventLevel",
    "Message",
    "ParameterDefinition",
    "ParameterDefinitions",
    "ParameterGroup",
    "StreamEnd",
    "StreamEndType",
    "StreamProperties",
    "TimeseriesData",
    "decode",
    "encode",
    "encode_headers_form",
    "encode_value",
    "format_datetime",
    "model_key",
    "normalize_location",
    "parameter_data_envelope",
    "parse_event_data",
    "parse_event_definitions",
    "parse_parameter_data",
    "parse_parameter_definitions",
    "parse_stream_details",
    "to_api",
]
