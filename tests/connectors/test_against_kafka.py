"""Connectors run straight against Apache Kafka (``kafka:`` setting), no streamport server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from streamport.broker.kafka import KafkaBroker
from streamport.connectors import Runner
from streamport.connectors.file import (
    FileDestination,
    FileDestinationConfig,
    FileSource,
    FileSourceConfig,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


async def test_file_source_to_kafka_and_back_with_committed_offsets(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"conn-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(3)) + "{bad\n")
    source = FileSource(
        FileSourceConfig(path=data, format="messages", output_topic=topic, kafka=kafka_bootstrap)
    )
    result = await Runner(source).run(timeout=60)
    assert result.records_out == 3
    assert result.dead_letters == 1

    group = f"g-{topic}"
    dest = FileDestination(
        FileDestinationConfig(
            input_topic=topic, group=group, directory=tmp_path / "out", kafka=kafka_bootstrap
        )
    )
    result = await Runner(dest).run(timeout=60, count=3)
    rows = [
        json.loads(line)
        for f in sorted((tmp_path / "out").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert rows == [{"n": 0}, {"n": 1}, {"n": 2}]
    async with KafkaBroker(kafka_bootstrap) as broker:
        assert await broker.committed(group, topic) == {0: 3}
        marks = await broker.watermarks(f"{topic}-dead-letter")
        assert sum(m.high for m in marks) == 1
