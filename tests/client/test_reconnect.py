"""StreamingClient across a restart of the gateway: it reconnects, resends what was not
acknowledged and resubscribes where its consumers stopped (docs/native-protocol.md)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamport import AutoOffsetReset, StreamingClient, TimeseriesData
from streamport.broker.embedded import EmbeddedBroker
from streamport.client import StreamConsumer, TopicProducer, _sender
from streamport.errors import StreamportError
from tests.client.test_streaming_client import topic, wait_for
from tests.gateway.conftest import run_gateway
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


class RestartableGateway:
    """A gateway (auth off) on its own thread, stopped and started again on the same port over
    the same broker log: what a client sees when `streamport up` is restarted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.starts = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        self.starts += 1
        ready, failure = threading.Event(), []

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            broker = EmbeddedBroker(self.root / "log")
            try:
                async with run_gateway(
                    self.root / f"gw{self.starts}", broker, port=self.port, auth=False
                ):
                    ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="test-gateway")
        self._thread.start()
        assert ready.wait(60) and not failure, failure

    def stop(self) -> None:
        if self._thread is None:
            return
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        self._thread = None


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[RestartableGateway]:
    gateway = RestartableGateway(tmp_path)
    gateway.start()
    yield gateway
    gateway.stop()


def publish(producer: TopicProducer, stamps: range) -> None:
    stream = producer.get_or_create_stream("car-1")
    for stamp in stamps:
        row = stream.timeseries.buffer.add_timestamp_nanoseconds(stamp)
        row.add_value("v", float(stamp)).publish()


def received(name: str, client: StreamingClient, group: str | None) -> list[int]:
    """Start consuming `name` from the beginning; the returned list fills with timestamps."""
    got: list[int] = []

    def on_stream(stream: StreamConsumer) -> None:
        def on_data(_: StreamConsumer, data: TimeseriesData) -> None:
            got.extend(row.timestamp_nanoseconds for row in data.timestamps)

        stream.timeseries.on_data_received = on_data

    consumer = client.get_topic_consumer(name, group, auto_offset_reset=AutoOffsetReset.Earliest)
    consumer.on_stream_received = on_stream
    consumer.subscribe()
    return got


@pytest.mark.parametrize("group", ["dashboard", None])
def test_producer_and_consumer_carry_on_across_a_gateway_restart(
    restartable: RestartableGateway, group: str | None
) -> None:
    name = topic()
    errors: list[BaseException] = []
    with (
        StreamingClient(restartable.url, on_error=errors.append) as writer,
        StreamingClient(restartable.url, on_error=errors.append) as reader,
    ):
        got = received(name, reader, group)
        producer = writer.get_topic_producer(name)
        publish(producer, range(0, 100))
        producer.flush()
        wait_for(lambda: len(set(got)) == 100)

        restartable.stop()
        publish(producer, range(100, 200))  # no gateway: these wait to be sent again
        restartable.start()
        producer.flush(timeout=60)  # sent again, acknowledged
        publish(producer, range(200, 300))  # and the producer goes on as before
        producer.flush(timeout=60)

        wait_for(lambda: set(got) >= set(range(300)), timeout=60)
        first_seen = list(dict.fromkeys(got))
        assert first_seen == list(range(300))  # nothing lost, order kept (repeats allowed)
    # the loss was reported (by the reader's fetch); no write failed
    assert all("lost" in str(e) or "connect" in str(e) for e in errors), errors


def test_records_fail_once_the_gateway_stays_away_past_the_delivery_timeout(
    restartable: RestartableGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sender, "DELIVERY_TIMEOUT", 1.0)
    name = topic()
    errors: list[BaseException] = []
    with StreamingClient(restartable.url, on_error=errors.append) as client:
        producer = client.get_topic_producer(name)
        publish(producer, range(0, 10))
        producer.flush()
        restartable.stop()
        publish(producer, range(10, 20))
        with pytest.raises(StreamportError, match=r"lost|connect"):
            producer.flush(timeout=30)
        assert errors  # reported to the hook as well
        restartable.start()
        publish(producer, range(20, 30))  # the producer works again once the gateway is back
        producer.flush(timeout=30)


def test_a_consumer_reports_an_outage_once_not_once_per_retry(
    restartable: RestartableGateway,
) -> None:
    name = topic()
    errors: list[BaseException] = []
    with (
        StreamingClient(restartable.url) as writer,
        StreamingClient(restartable.url, on_error=errors.append) as reader,
    ):
        got = received(name, reader, "dashboard")
        producer = writer.get_topic_producer(name)
        restartable.stop()
        time.sleep(4.5)  # the consumer retries its fetch every second meanwhile
        restartable.start()
        publish(producer, range(0, 10))
        producer.flush(timeout=60)
        wait_for(lambda: set(got) == set(range(10)), timeout=60)
    kinds = [f"{type(e).__name__}: {e}" for e in errors]
    assert 1 <= len(kinds) <= 2, kinds  # the loss, and the failed reconnection
    assert len(set(kinds)) == len(kinds)
