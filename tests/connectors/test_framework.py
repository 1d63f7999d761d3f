"""The framework end to end through a live gateway: checkpoint order, dead letters, backpressure,
transient retries, config binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, SecretStr

from streamport.broker import Record
from streamport.connectors import (
    Backpressure,
    ConnectorError,
    Destination,
    DestinationConfig,
    Output,
    Runner,
    SinkRecord,
    Source,
    SourceConfig,
    SourceRecord,
    bind_config,
    convert,
    describe_fields,
)
from streamport.errors import ConfigError
from tests.connectors.conftest import platform
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


class ListConfig(DestinationConfig):
    password: SecretStr | None = Field(default=None, description="a secret")


class ListDestination(Destination[ListConfig]):
    """Buffers in write(), keeps in flush(); logs the calls so the test sees their order."""

    name = "list"
    summary = "collect records in memory"
    config_class = ListConfig

    def __init__(self, config: ListConfig, failures: list[BaseException] | None = None) -> None:
        super().__init__(config)
        self.buffer: list[Any] = []
        self.kept: list[Any] = []
        self.calls: list[str] = []
        self.failures = list(failures or [])

    async def write(self, batch: list[SinkRecord]) -> None:
        self.calls.append("write")
        if self.failures:
            raise self.failures.pop(0)

        def check(record: SinkRecord) -> Any:
            value = record.payload()
            if value == {"poison": True}:
                raise ValueError("poison pill")
            return value

        self.buffer.extend(convert(batch, check))

    async def flush(self) -> None:
        self.calls.append("flush")
        self.kept.extend(self.buffer)
        self.buffer.clear()


async def put(gw: Gateway, topic: str, values: list[bytes]) -> None:
    await gw.broker.create_topic(topic)
    await gw.broker.produce(topic, [Record(value=v) for v in values])


async def test_poison_record_goes_to_dead_letter_and_the_rest_is_committed(
    gateway: Gateway,
) -> None:
    await put(gateway, "in", [b'{"n":1}', b'{"poison":true}', b'{"n":3}'])
    config = ListConfig(input_topic="in", group="g1", **platform(gateway))
    dest = ListDestination(config)
    result = await Runner(dest).run(timeout=20, count=3)
    assert dest.kept == [{"n": 1}, {"n": 3}]
    assert result.dead_letters == 1
    (dead,) = await gateway.read("in-dead-letter", 1)
    assert dead.value == b'{"poison":true}'
    headers = dict(dead.headers)
    assert b"poison pill" in headers["x-error"]
    assert headers["x-source-topic"] == b"in"
    assert headers["x-source-offset"] == b"1"
    assert await gateway.broker.committed("g1", "in") == {0: 3}
    # flush before the commit: the last call before the end is a flush
    assert dest.calls[-1] == "flush"


async def test_nothing_is_committed_without_a_flush(gateway: Gateway) -> None:
    class FailingFlush(ListDestination):
        async def flush(self) -> None:
            raise ConnectorError("disk gone")  # permanent

    await put(gateway, "in2", [b'{"n":1}'])
    config = ListConfig(input_topic="in2", group="g2", **platform(gateway))
    with pytest.raises(ConnectorError, match="disk gone"):
        await Runner(FailingFlush(config)).run(timeout=20, count=1)
    assert await gateway.broker.committed("g2", "in2") == {}


async def test_backpressure_and_transient_errors_are_retried(gateway: Gateway) -> None:
    await put(gateway, "in3", [b'{"n":1}', b'{"n":2}'])
    config = ListConfig(input_topic="in3", group="g3", retry_initial=0.01, **platform(gateway))
    dest = ListDestination(
        config,
        failures=[Backpressure(0.05), ConnectorError("flaky", retriable=True), OSError("reset")],
    )
    runner = Runner(dest)
    result = await runner.run(timeout=20, count=2)
    assert dest.kept == [{"n": 1}, {"n": 2}]
    assert result.dead_letters == 0
    assert runner.metrics.records_out_count == 2
    text = runner_metrics_text(runner)
    assert 'streamport_connector_retries_total{connector="list"} 3.0' in text
    assert 'streamport_connector_records_out_total{connector="list"} 2.0' in text


class CountConfig(SourceConfig):
    total: int = 5


class CountSource(Source[CountConfig]):
    name = "count"
    summary = "count to total"
    config_class = CountConfig

    def __init__(self, config: CountConfig) -> None:
        super().__init__(config)
        self.acked: list[int] = []

    async def run(self, output: Output) -> None:
        for n in range(self.config.total):

            async def ack(n: int = n) -> None:
                self.acked.append(n)

            if n == 2:
                await output.reject(b"two", ValueError("no twos"))
                continue
            await output.send([SourceRecord(str(n).encode(), ack=ack)])


async def test_source_sends_acks_and_rejects(gateway: Gateway) -> None:
    source = CountSource(CountConfig(output_topic="counts", **platform(gateway)))
    result = await Runner(source).run(timeout=20)
    assert source.acked == [0, 1, 3, 4]
    assert result.records_out == 4
    values = [r.value for r in await gateway.read("counts", 4)]
    assert values == [b"0", b"1", b"3", b"4"]
    (dead,) = await gateway.read("counts-dead-letter", 1)
    assert dict(dead.headers)["x-error"] == b"no twos"


async def test_source_connect_is_retried_until_stopped() -> None:
    # Nothing listens on this port: the runner retries the connection until the timeout.
    from tests.services.ports import free_port

    source = CountSource(
        CountConfig(output_topic="x", url=f"http://127.0.0.1:{free_port()}", retry_initial=0.01)
    )
    runner = Runner(source)
    result = await runner.run(timeout=1.0)
    assert result.records_out == 0
    assert runner.metrics.records_out_count == 0
    text = runner_metrics_text(runner)
    assert 'streamport_connector_retries_total{connector="count"}' in text
    assert 'streamport_connector_retries_total{connector="count"} 0.0' not in text


def runner_metrics_text(runner: Runner) -> str:
    return runner.registry.render().decode()


def test_config_binds_file_then_environment(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("connector: list\ninput_topic: a\nbatch_size: 7\npassword: from-file\n")
    config = bind_config(
        ListConfig,
        file=file,
        environ={
            "STREAMPORT_CONNECTOR_BATCH_SIZE": "9",
            "STREAMPORT_CONNECTOR_KAFKA_CONFIG": "{security.protocol: SSL}",
            "STREAMPORT_CONNECTOR_GROUP": "123",
            "OTHER": "x",
        },
        defaults={"url": "http://example:1"},
    )
    assert config.input_topic == "a"
    assert config.batch_size == 9
    assert config.kafka_config == {"security.protocol": "SSL"}
    assert config.group == "123"  # text settings are taken verbatim, not as YAML
    assert config.url == "http://example:1"
    assert config.password is not None and config.password.get_secret_value() == "from-file"
    assert "from-file" not in repr(config)


def test_config_errors_name_the_setting_and_hide_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size") as info:
        bind_config(ListConfig, overrides={"input_topic": "a", "batch_size": 0, "password": "s3"})
    assert "s3" not in str(info.value)
    with pytest.raises(ConfigError, match="input_topic"):
        bind_config(ListConfig, environ={})


def test_describe_marks_secrets() -> None:
    fields = {f.name: f for f in describe_fields(ListConfig)}
    assert fields["password"].secret
    assert fields["token"].secret
    assert not fields["batch_size"].secret
    assert fields["batch_size"].default == "500"
    assert fields["input_topic"].required


async def test_stop_during_backpressure_commits_what_was_written(gateway: Gateway) -> None:
    class Busy(ListDestination):
        async def write(self, batch: list[SinkRecord]) -> None:
            if any(r.offset == 1 for r in batch):
                runner.stop()  # downstream keeps asking to wait; the operator stops
                raise Backpressure(30)
            await super().write(batch)

    await put(gateway, "in5", [b'{"n":0}', b'{"n":1}'])
    config = ListConfig(input_topic="in5", group="g5", batch_size=1, **platform(gateway))
    dest = Busy(config)
    runner = Runner(dest)
    await runner.run(timeout=60)
    assert dest.kept == [{"n": 0}]
    assert await gateway.broker.committed("g5", "in5") == {0: 1}


async def test_a_batch_error_without_a_culprit_is_split_to_find_the_poison(
    gateway: Gateway,
) -> None:
    class Strict(ListDestination):
        async def write(self, batch: list[SinkRecord]) -> None:
            if any(r.value == b'{"bad":1}' for r in batch):
                raise ConnectorError("the database refused the batch")  # names no record
            await super().write(batch)

    await put(gateway, "in6", [b'{"n":0}', b'{"bad":1}', b'{"n":2}'])
    config = ListConfig(input_topic="in6", group="g6", **platform(gateway))
    dest = Strict(config)
    result = await Runner(dest).run(timeout=60, count=3)
    assert dest.kept == [{"n": 0}, {"n": 2}]
    assert result.dead_letters == 1
    (dead,) = await gateway.read("in6-dead-letter", 1)
    assert dict(dead.headers)["x-error"] == b"the database refused the batch"
    assert await gateway.broker.committed("g6", "in6") == {0: 3}


async def test_config_error_stops_the_destination(gateway: Gateway) -> None:
    class Misconfigured(ListDestination):
        async def write(self, batch: list[SinkRecord]) -> None:
            raise ConfigError("bad credentials")

    await put(gateway, "in7", [b'{"n":0}', b'{"n":1}'])
    config = ListConfig(input_topic="in7", group="g7", **platform(gateway))
    with pytest.raises(ConfigError, match="bad credentials"):
        await Runner(Misconfigured(config)).run(timeout=60, count=2)
    assert await gateway.broker.committed("g7", "in7") == {}
    assert "in7-dead-letter" not in [t.name for t in await gateway.broker.list_topics()]


async def test_batches_read_ahead_are_prepared_before_they_are_written(gateway: Gateway) -> None:
    # prepare() gets each batch the framework reads (ahead of the one being written) before
    # write() gets that very batch; a prepare() that fails changes nothing.
    class Preparing(ListDestination):
        def __init__(self, config: ListConfig) -> None:
            super().__init__(config)
            self.prepared: list[list[SinkRecord]] = []
            self.written: list[list[SinkRecord]] = []

        def prepare(self, batch: list[SinkRecord]) -> None:
            self.prepared.append(batch)
            if len(self.prepared) == 2:
                raise ValueError("ignored")

        async def write(self, batch: list[SinkRecord]) -> None:
            self.written.append(batch)
            await super().write(batch)

    await put(gateway, "in-prep", [b'{"n":%d}' % n for n in range(10)])
    config = ListConfig(input_topic="in-prep", group="g-prep", batch_size=3, **platform(gateway))
    dest = Preparing(config)
    result = await Runner(dest).run(timeout=20, count=10)
    assert result.records_out == 10
    assert dest.kept == [{"n": n} for n in range(10)]
    assert [len(b) for b in dest.written] == [3, 3, 3, 1]
    assert dest.prepared == dest.written
    assert [r.offset for r in dest.written[1]] == [3, 4, 5]
    assert await gateway.broker.committed("g-prep", "in-prep") == {0: 10}


def test_batch_of_builds_what_of_builds() -> None:
    from streamport.broker import ConsumedRecord

    records = [
        ConsumedRecord("t", 1, 7, b"k", b"v", (("h", b"x"),), 123),
        ConsumedRecord("t", 0, 8, None, b"", (), 0),
    ]
    assert SinkRecord.batch_of(records) == [SinkRecord.of(r) for r in records]
    assert SinkRecord.batch_of([]) == []
