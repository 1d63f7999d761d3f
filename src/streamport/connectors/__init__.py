"""Connectors: sources that bring outside data into topics, destinations that take it out.

Write one by subclassing `Source` or `Destination` (see ``docs/connectors.md``); run it with
``streamport connectors run NAME --config FILE`` or, in code, with `Runner`::

    runner = Runner(FileSource(FileSourceConfig(path="laps.csv", output_topic="laps")))
    await runner.run()
"""

from streamport.connectors.base import (
    Ack,
    Connector,
    ConnectorState,
    Destination,
    SinkRecord,
    Source,
    SourceRecord,
    convert,
)
from streamport.connectors.checkpoint import Checkpoint
from streamport.connectors.config import (
    ConnectorConfig,
    DestinationConfig,
    SourceConfig,
    bind_config,
    describe_fields,
)
from streamport.connectors.dlq import DeadLetters
from streamport.connectors.mapping import Mapper, MappingSettings
from streamport.connectors.metrics import ConnectorMetrics
from streamport.connectors.retry import Backoff, Stopped, is_retriable, retry
from streamport.connectors.runtime import Output, Runner, RunResult
from streamport.errors import Backpressure, ConnectorError, RecordRejected

__all__ = [
    "Ack",
    "Backoff",
    "Backpressure",
    "Checkpoint",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "ConnectorMetrics",
    "ConnectorState",
    "DeadLetters",
    "Destination",
    "DestinationConfig",
    "Mapper",
    "MappingSettings",
    "Output",
    "RecordRejected",
    "RunResult",
    "Runner",
    "SinkRecord",
    "Source",
    "SourceConfig",
    "SourceRecord",
    "Stopped",
    "bind_config",
    "convert",
    "describe_fields",
    "is_retriable",
    "retry",
]
