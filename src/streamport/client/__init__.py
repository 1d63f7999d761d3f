"""The Python SDK with the Quix streaming-client API.

Code written for the legacy Quix client (``quixstreams`` 0.5) runs on streamport after changing
the import and the client constructor::

    from streamport import App, StreamingClient

    client = StreamingClient()   # STREAMPORT_URL / STREAMPORT_TOKEN, or pass url= and token=
    producer = client.get_topic_producer("cars")
    stream = producer.create_stream()
    stream.timeseries.buffer.add_timestamp_nanoseconds(1).add_value("speed", 98.5).publish()
    stream.close()
    producer.flush()

``KafkaStreamingClient(broker_address)`` talks to Apache Kafka directly with the same envelope.
See ``docs/sdk.md``.
"""

from streamport.client._app import App, CancellationToken, CancellationTokenSource
from streamport.client._buffer import TimeseriesBufferProducer, TimeseriesDataBuilder
from streamport.client._client import KafkaStreamingClient, StreamingClient
from streamport.client._consumer import (
    StreamConsumer,
    StreamEventsConsumer,
    StreamPropertiesConsumer,
    StreamTimeseriesConsumer,
    TimeseriesBufferConsumer,
    TopicConsumer,
)
from streamport.client._data import (
    EventData,
    ParameterValue,
    ParameterValueType,
    TimeseriesData,
    TimeseriesDataTimestamp,
)
from streamport.client._enums import (
    AutoOffsetReset,
    CommitMode,
    CommitOptions,
    EventLevel,
    SaslMechanism,
    SecurityOptions,
    StreamEndType,
)
from streamport.client._producer import (
    EventDataBuilder,
    EventDefinitionBuilder,
    ParameterDefinitionBuilder,
    StreamEventsProducer,
    StreamProducer,
    StreamPropertiesProducer,
    StreamTimeseriesProducer,
    TopicProducer,
)
from streamport.client._raw import RawMessage, RawTopicConsumer, RawTopicProducer

__all__ = [
    "App",
    "AutoOffsetReset",
    "CancellationToken",
    "CancellationTokenSource",
    "CommitMode",
    "CommitOptions",
    "EventData",
    "EventDataBuilder",
    "EventDefinitionBuilder",
    "EventLevel",
    "KafkaStreamingClient",
    "ParameterDefinitionBuilder",
    "ParameterValue",
    "ParameterValueType",
    "RawMessage",
    "RawTopicConsumer",
    "RawTopicProducer",
    "SaslMechanism",
    "SecurityOptions",
    "StreamConsumer",
    "StreamEndType",
    "StreamEventsConsumer",
    "StreamEventsProducer",
    "StreamProducer",
    "StreamPropertiesConsumer",
    "StreamPropertiesProducer",
    "StreamTimeseriesConsumer",
    "StreamTimeseriesProducer",
    "StreamingClient",
    "TimeseriesBufferConsumer",
    "TimeseriesBufferProducer",
    "TimeseriesData",
    "TimeseriesDataBuilder",
    "TimeseriesDataTimestamp",
    "TopicConsumer",
    "TopicProducer",
]
