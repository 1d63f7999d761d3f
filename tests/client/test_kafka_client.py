"""KafkaStreamingClient against the real Apache Kafka test broker."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from streamport import AutoOffsetReset, EventData, KafkaStreamingClient, StreamEndType
from streamport.client import StreamConsumer
from tests.client.test_streaming_client import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_kafka_round_trip_with_group_commit(kafka_bootstrap: str) -> None:
    topic = f"sdk-{uuid.uuid4().hex[:8]}"
    frames: list[pd.DataFrame] = []
    events: list[EventData] = []
    closed: list[StreamEndType] = []

    def on_stream(stream: StreamConsumer) -> None:
        stream.timeseries.on_dataframe_received = lambda _, df: frames.append(df)
        stream.events.on_data_received = lambda _, e: events.append(e)
        stream.on_stream_closed = lambda _, end: closed.append(end)

    with KafkaStreamingClient(kafka_bootstrap) as client:
        with client.get_topic_producer(topic) as producer:
            stream = producer.create_stream("car-7")
            stream.properties.name = "kafka lap"
            stream.timeseries.buffer.packet_size = 2
            for i in range(4):
                stream.timeseries.buffer.add_timestamp_nanoseconds(i).add_value(
                    "speed", i * 1.5
                ).add_tag("car", "7").publish()
            stream.events.add_timestamp_nanoseconds(9).add_value("pit", "in").publish()
            stream.close()
        consumer = client.get_topic_consumer(
            topic, "sdk-group", auto_offset_reset=AutoOffsetReset.Earliest
        )
        consumer.on_stream_received = on_stream
        consumer.subscribe()
        wait_for(lambda: closed == [StreamEndType.Closed], timeout=90)
        consumer.unsubscribe()
    rows = pd.concat(frames)
    assert list(rows["speed"]) == [0.0, 1.5, 3.0, 4.5]
    assert list(rows["TAG__car"]) == ["7"] * 4
    assert [(e.id, e.value) for e in events] == [("pit", "in")]

    # the group committed everything: a new consumer of the group sees only new data
    later: list[EventData] = []
    with KafkaStreamingClient(kafka_bootstrap) as client:
        consumer = client.get_topic_consumer(
            topic, "sdk-group", auto_offset_reset=AutoOffsetReset.Earliest
        )
        consumer.on_stream_received = lambda s: setattr(
            s.events, "on_data_received", lambda _, e: later.append(e)
        )
        consumer.subscribe()
        with client.get_topic_producer(topic) as producer:
            producer.create_stream("car-8").events.add_timestamp_nanoseconds(1).add_value(
                "pit", "out"
            ).publish()
        wait_for(lambda: len(later) >= 1, timeout=90)
    assert [(e.id, e.value) for e in later] == [("pit", "out")]


def test_kafka_direct_produce_keeps_order_and_reports_refused_records(
    kafka_bootstrap: str,
) -> None:
    """Records go to librdkafka from the publishing thread (no loop hop): the first push creates
    the topic, 300 packets arrive in order, and a record over the size limit fails through the
    error hook and the next flush without stopping the others."""
    from streamport import RawMessage
    from streamport.errors import StreamportError

    topic = f"sdk-{uuid.uuid4().hex[:8]}"
    stamps: list[int] = []
    errors: list[BaseException] = []
    with KafkaStreamingClient(kafka_bootstrap, on_error=errors.append) as client:
        with client.get_topic_producer(topic) as producer:
            buffer = producer.create_stream("ordered").timeseries.buffer
            buffer.packet_size = 10
            for i in range(3_000):
                buffer.add_timestamp_nanoseconds(i).add_value("v", i * 0.5).publish()
        raw = client.get_raw_topic_producer(topic + "-raw")
        raw.publish(RawMessage(b"x" * 2_000_000))
        raw.publish(RawMessage(b"fine"))
        with pytest.raises(StreamportError, match="over the limit"):
            raw.flush()
        raw.flush()  # the failure was raised once; the small record was delivered
        consumer = client.get_topic_consumer(topic, "g", auto_offset_reset=AutoOffsetReset.Earliest)

        def on_stream(stream: StreamConsumer) -> None:
            stream.timeseries.on_data_received = lambda _, data: stamps.extend(
                row.timestamp_nanoseconds for row in data.timestamps
            )

        consumer.on_stream_received = on_stream
        consumer.subscribe()
        wait_for(lambda: len(stamps) >= 3_000, timeout=90)
    assert stamps == list(range(3_000))
    assert len(errors) == 1 and "over the limit" in str(errors[0])
