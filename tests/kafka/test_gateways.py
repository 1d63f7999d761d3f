"""`streamport up --broker kafka://...` as real processes on the test Kafka broker."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from streamport.model import EventData, StreamProperties, TimeseriesData
from tests.cli.conftest import Server, run_cli, start_server
from tests.kafka.support import HubClient, decoded, read_topic, unique

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

TS = 1_700_000_000_000_000_000


async def test_up_on_kafka_writer_http_to_topic(kafka_server: Server, kafka_bootstrap: str) -> None:
    assert any(f"kafka://{kafka_bootstrap}" in line for line in kafka_server.output)
    assert kafka_server.token is not None
    topic = unique("up")
    headers = {"Authorization": f"Bearer {kafka_server.token}"}
    async with httpx.AsyncClient(base_url=kafka_server.url + "/writer", headers=headers) as http:
        created = await http.post(f"/topics/{topic}/streams", json={"name": "car 7"})
        assert created.status_code == 200, created.text
        stream_id = created.json()["streamId"]
        data = await http.post(
            f"/topics/{topic}/streams/{stream_id}/parameters/data",
            json={
                "timestamps": [TS, TS + 1000],
                "numericValues": {"speed": [101.5, 102.25]},
                "stringValues": {"gear": ["3", "4"]},
                "tagValues": {"driver": ["A", "B"]},
            },
        )
        assert data.status_code == 200, data.text
        events = await http.post(
            f"/topics/{topic}/streams/{stream_id}/events/data",
            json=[{"id": "pit", "timestamp": TS + 5, "value": "in", "tags": {"lap": "3"}}],
        )
        assert events.status_code == 200, events.text

    records = await asyncio.to_thread(read_topic, kafka_bootstrap, topic, 3)
    assert [r.key() for r in records] == [stream_id.encode()] * 3
    props, series, event = (decoded(r) for r in records)
    assert props == StreamProperties(name="car 7")
    assert series == TimeseriesData(
        timestamps=[TS, TS + 1000],
        numeric_values={"speed": [101.5, 102.25]},
        string_values={"gear": ["3", "4"]},
        tag_values={"driver": ["A", "B"]},
    )
    assert event == EventData(id="pit", timestamp=TS + 5, value="in", tags={"lap": "3"})


def shared_token(first: Path, second: Path) -> str:
    """One admin token valid on both gateways: created offline in `first`, then its token file
    (which holds only hashes) copied to `second`."""
    done = run_cli("tokens", "create", "--name", "fleet", "--data-dir", str(first))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    second.mkdir(parents=True)
    shutil.copy(first / "tokens.json", second / "tokens.json")
    return token


async def test_two_gateways_are_stateless_over_kafka(tmp_path: Path, kafka_bootstrap: str) -> None:
    token = shared_token(tmp_path / "a", tmp_path / "b")
    broker = f"kafka://{kafka_bootstrap}"
    a = start_server(tmp_path / "a", "--broker", broker)
    b = start_server(tmp_path / "b", "--broker", broker)
    try:
        assert a.token is None and b.token is None  # no first-run token: the shared one exists
        topic = unique("fleet")
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=a.url + "/writer", headers=headers) as http_a,
            httpx.AsyncClient(base_url=b.url + "/writer", headers=headers) as http_b,
        ):
            created = await http_a.post(f"/topics/{topic}/streams", json={"name": "from A"})
            assert created.status_code == 200, created.text
            stream_a = created.json()["streamId"]

            async with (
                HubClient(a.url + "/reader/hub", token) as reader_a,
                HubClient(b.url + "/reader/hub", token) as reader_b,
            ):
                await reader_b.invoke("SubscribeToParameter", topic, "*", "speed")
                await reader_b.invoke("SubscribeToEvent", topic, "*", "*")
                await reader_a.invoke("SubscribeToParameter", topic, "*", "speed")

                sent = await http_a.post(
                    f"/topics/{topic}/streams/{stream_a}/parameters/data",
                    json={"timestamps": [TS], "numericValues": {"speed": [88.0]}},
                )
                assert sent.status_code == 200, sent.text
                sent = await http_a.post(
                    f"/topics/{topic}/streams/{stream_a}/events/data",
                    json={"id": "flag", "timestamp": TS, "value": "green"},
                )
                assert sent.status_code == 200, sent.text
                # and the other way round: written through B, read on A
                created = await http_b.post(f"/topics/{topic}/streams", json={"name": "from B"})
                stream_b = created.json()["streamId"]
                sent = await http_b.post(
                    f"/topics/{topic}/streams/{stream_b}/parameters/data",
                    json={"timestamps": [TS + 1], "numericValues": {"speed": [99.0]}},
                )
                assert sent.status_code == 200, sent.text

                await reader_b.wait_for(
                    lambda got: (
                        len(got["ParameterDataReceived"]) >= 2
                        and len(got["EventDataReceived"]) >= 1
                    )
                )
                await reader_a.wait_for(lambda got: len(got["ParameterDataReceived"]) >= 2)
                on_b = [args[0] for args in reader_b.received["ParameterDataReceived"]]
                on_a = [args[0] for args in reader_a.received["ParameterDataReceived"]]
                for seen in (on_a, on_b):
                    assert [(d["streamId"], d["timestamps"], d["numericValues"]) for d in seen] == [
                        (stream_a, [TS], {"speed": [88.0]}),
                        (stream_b, [TS + 1], {"speed": [99.0]}),
                    ]
                [event] = [args[0] for args in reader_b.received["EventDataReceived"]]
                assert (event["streamId"], event["id"], event["value"]) == (
                    stream_a,
                    "flag",
                    "green",
                )

                active_a = await reader_a.invoke("SubscribeToActiveStreams", topic)
                active_b = await reader_b.invoke("SubscribeToActiveStreams", topic)
                summary_a = sorted((s["streamId"], s["name"]) for s in active_a)
                summary_b = sorted((s["streamId"], s["name"]) for s in active_b)
                assert summary_a == summary_b
                assert summary_a == sorted([(stream_a, "from A"), (stream_b, "from B")])
    finally:
        a.stop()
        b.stop()
