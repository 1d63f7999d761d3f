"""The producer's buffer conditions, concurrent publishers and pipelined batches, end to end.

Against a real gateway (embedded broker): rows go through the buffer, several batches wait for
their acknowledgement at once, and a consumer reads back what arrived.
"""

from __future__ import annotations

import threading

import pytest

from streamport import AutoOffsetReset, StreamingClient, TimeseriesData
from streamport.client import StreamConsumer
from tests.client.conftest import ThreadGateway
from tests.client.test_streaming_client import topic, wait_for

pytestmark = pytest.mark.integration


class Packets:
    def __init__(self) -> None:
        self.packets: list[TimeseriesData] = []

    def on_stream(self, stream: StreamConsumer) -> None:
        stream.timeseries.on_data_received = lambda s, data: self.packets.append(data)

    def rows(self) -> list[tuple[int, dict[str, object], dict[str, str]]]:
        return [
            (row.timestamp_nanoseconds, {k: v.value for k, v in row.parameters.items()}, row.tags)
            for packet in self.packets
            for row in packet.timestamps
        ]


def test_threads_publishing_into_one_buffer_lose_nothing(sdk_gateway: ThreadGateway) -> None:
    """No lock per row: rows published by 4 threads at once all arrive, once, each thread's in
    its order, in packets of at most packet_size rows."""
    name, threads, per_thread = topic(), 4, 2_000
    seen = Packets()
    with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
        producer = client.get_topic_producer(name)
        stream = producer.create_stream("shared")
        buffer = stream.timeseries.buffer
        buffer.packet_size = 50
        start = threading.Barrier(threads)

        def publish(worker: int) -> None:
            start.wait()
            for i in range(per_thread):
                row = buffer.add_timestamp_nanoseconds(worker * 1_000_000 + i)
                row.add_value("worker", worker).add_value("i", i).publish()

        workers = [threading.Thread(target=publish, args=(w,)) for w in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        producer.flush()
        consumer = client.get_topic_consumer(name, "g", auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_stream_received = seen.on_stream
        consumer.subscribe()
        wait_for(lambda: sum(len(p.timestamps) for p in seen.packets) >= threads * per_thread)
        rows = seen.rows()
        assert len(rows) == threads * per_thread
        for worker in range(threads):
            mine = [values["i"] for _, values, _ in rows if values["worker"] == worker]
            assert mine == list(range(per_thread))
        assert max(len(p.timestamps) for p in seen.packets) <= 60  # 50 + what raced in
        assert client.error_count == 0


def test_many_packets_keep_their_order_with_batches_in_flight(sdk_gateway: ThreadGateway) -> None:
    """~6 MB in 430 packets of 14 KB: far more than one batch (about 1 MiB) waits while the first
    is acknowledged, so several batches are in flight; the stream still arrives in order."""
    name, count = topic(), 3_000
    padding = "x" * 2_000
    seen = Packets()
    with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
        producer = client.get_topic_producer(name)
        stream = producer.create_stream("ordered")
        stream.timeseries.buffer.packet_size = 7
        for i in range(count):
            row = stream.timeseries.buffer.add_timestamp_nanoseconds(i)
            row.add_value("v", i * 0.5).add_value("pad", padding).publish()
        producer.flush()
        consumer = client.get_topic_consumer(name, "g", auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_stream_received = seen.on_stream
        consumer.subscribe()
        wait_for(lambda: sum(len(p.timestamps) for p in seen.packets) >= count)
        rows = seen.rows()
        assert [ns for ns, _, _ in rows] == list(range(count))
        assert [values["v"] for _, values, _ in rows] == [i * 0.5 for i in range(count)]
        assert [len(p.timestamps) for p in seen.packets[:-1]] == [7] * (count // 7)
        assert client.error_count == 0


def test_time_span_and_timeout_release_packets(sdk_gateway: ThreadGateway) -> None:
    name = topic()
    seen = Packets()
    with StreamingClient(sdk_gateway.url, sdk_gateway.token) as client:
        consumer = client.get_topic_consumer(name, "g", auto_offset_reset=AutoOffsetReset.Earliest)
        consumer.on_stream_received = seen.on_stream
        consumer.subscribe()
        producer = client.get_topic_producer(name)
        spanned = producer.create_stream("span").timeseries.buffer
        spanned.time_span_in_milliseconds = 1  # 1,000,000 ns
        for ns in (0, 400_000, 999_999, 1_000_000, 1_500_000, 2_100_000):
            spanned.add_timestamp_nanoseconds(ns).add_value("x", 1.0).publish()
        timed = producer.create_stream("timeout").timeseries.buffer
        timed.buffer_timeout = 100  # ms: released without flush
        timed.packet_size = 1_000
        for ns in range(3):
            timed.add_timestamp_nanoseconds(ns).add_tag("k", "v").add_value("y", "s").publish()
        wait_for(lambda: sum(len(p.timestamps) for p in seen.packets) >= 3 + 4)
        sizes = sorted(len(p.timestamps) for p in seen.packets)
        # span: [0, 400k, 999,999, 1M] released at the 4th row (1M - 0 >= span); the
        # timeout stream's 3 rows in one packet; the last two span rows wait for the flush.
        assert sizes == [3, 4]
        producer.flush()
        wait_for(lambda: sum(len(p.timestamps) for p in seen.packets) >= 9)
        assert sorted(len(p.timestamps) for p in seen.packets) == [2, 3, 4]
        assert client.error_count == 0
