# ruff: noqa: SIM112 (Quix deployments inject variables under their lower-case descriptor names)
"""Compute a rolling average from ``on_dataframe_received`` and publish it to another topic.

Environment: ``input``, ``output`` (topics), ``parameter`` (default ``speed``), ``window`` (rows,
default 3), ``consumer_group``. Stops cleanly on SIGTERM/SIGINT (App.run commits what was
processed and flushes the producer).
"""

import os

import pandas as pd

from streamport import App, AutoOffsetReset, StreamingClient
from streamport.client import StreamConsumer

client = StreamingClient()
consumer = client.get_topic_consumer(
    os.environ["input"],
    os.environ.get("consumer_group", "rolling-average"),
    auto_offset_reset=AutoOffsetReset.Earliest,
)
producer = client.get_topic_producer(os.environ["output"])
parameter = os.environ.get("parameter", "speed")
window = int(os.environ.get("window", "3"))

# The last rows of each stream, so the average rolls across packets.
history: dict[str, pd.DataFrame] = {}


def on_stream_received(input_stream: StreamConsumer) -> None:
    output_stream = producer.get_or_create_stream(input_stream.stream_id)
    output_stream.properties.parents.append(input_stream.stream_id)

    def on_dataframe(stream: StreamConsumer, df: pd.DataFrame) -> None:
        if parameter not in df:
            return
        rows = pd.concat([history.get(stream.stream_id), df[["timestamp", parameter]]])
        rows = rows.tail(window - 1 + len(df))
        averaged = rows[parameter].rolling(window, min_periods=1).mean().tail(len(df))
        history[stream.stream_id] = rows.tail(window - 1)
        out = pd.DataFrame(
            {"timestamp": df["timestamp"].to_numpy(), f"{parameter}_avg": averaged.to_numpy()}
        )
        output_stream.timeseries.publish(out)

    input_stream.timeseries.on_dataframe_received = on_dataframe
    input_stream.on_stream_closed = lambda s, end: output_stream.close(end)


consumer.on_stream_received = on_stream_received
print("ready", flush=True)
App.run()
