"""The process the reliability test kills: it holds an embedded broker and produces forever.

Usage: python producer_process.py DATA_DIR ACK_LOG LIFE

Several tasks produce concurrently (so writes are group-committed); after each acknowledged
produce call, one line per record ``<partition> <offset> <payload>`` is appended to ACK_LOG
and flushed. The test SIGKILLs this process at some moment and checks the log against the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from streamport.broker.base import Record, TopicConfig
from streamport.broker.embedded import EmbeddedBroker
from streamport.errors import TopicExists

TOPIC = "reliability"
TASKS = 4


async def produce_forever(broker: EmbeddedBroker, task: str, log: object) -> None:
    seq = 0
    while True:
        size = 1 + seq % 50
        payloads = [f"{task}-{seq + i}".encode() for i in range(size)]
        records = [Record(p + b"." * (seq % 300), key=p[-3:]) for p in payloads]
        metas = await broker.produce(TOPIC, records)
        lines = "".join(
            f"{m.partition} {m.offset} {p.decode()}\n" for m, p in zip(metas, payloads, strict=True)
        )
        log.write(lines)  # type: ignore[attr-defined]
        log.flush()  # type: ignore[attr-defined]
        seq += size


async def main(data_dir: Path, ack_log: Path, life: str) -> None:
    async with EmbeddedBroker(data_dir, segment_bytes=256 << 10) as broker:
        with contextlib.suppress(TopicExists):
            await broker.create_topic(TOPIC, TopicConfig(partitions=3))
        with ack_log.open("a", buffering=1) as log:
            async with asyncio.TaskGroup() as tg:
                for task in range(TASKS):
                    tg.create_task(produce_forever(broker, f"L{life}T{task}", log))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
