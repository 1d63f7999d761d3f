"""Acknowledged writes survive SIGKILL of the server: every acknowledged record is present exactly
once after a restart, in order within its partition."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.cli.conftest import start_server

pytestmark = pytest.mark.integration

WRITERS = 4
BATCH = 50


def test_acknowledged_records_survive_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    headers = {"Authorization": f"Bearer {server.token}"}
    created = httpx.post(
        server.url + "/api/topics", json={"name": "rel", "partitions": 3}, headers=headers
    )
    assert created.status_code == 201
    acked: list[tuple[int, int, str]] = []  # (partition, offset, value)
    lock = threading.Lock()
    stop = threading.Event()

    def produce(writer: int) -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            for batch_number in range(100_000):
                if stop.is_set():
                    return
                values = [f"w{writer}-b{batch_number}-r{i}" for i in range(BATCH)]
                body = [{"key": f"k{i % 7}", "value": v} for i, v in enumerate(values)]
                try:
                    response = http.post("/api/topics/rel/records", json=body)
                except httpx.TransportError:
                    return  # the server died mid-request: this batch was never acknowledged
                if response.status_code != 200:
                    return
                placed = response.json()["offsets"]
                with lock:
                    acked.extend(
                        (p["partition"], p["offset"], v)
                        for p, v in zip(placed, values, strict=True)
                    )

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20 * BATCH and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL while the writers are still sending
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(acked) >= 20 * BATCH

    restarted = start_server(data_dir)
    try:
        described = httpx.get(restarted.url + "/api/topics/rel", headers=headers).json()
        total = sum(p["high"] for p in described["partitionOffsets"])
        params = {"fromBeginning": "true", "count": total}
        with httpx.stream(
            "GET",
            restarted.url + "/api/topics/rel/records",
            params=params,
            headers=headers,
            timeout=60,
        ) as response:
            records = [msgspec.json.decode(line) for line in response.iter_lines() if line]
    finally:
        restarted.stop()

    stored = {(r["partition"], r["offset"]): r["value"] for r in records}
    assert len(stored) == len(records) == total
    for partition, offset, value in acked:
        assert stored.get((partition, offset)) == value, (partition, offset)
    values = [r["value"] for r in records]
    assert len(set(values)) == len(values)  # nothing stored twice
    for partition in range(3):
        offsets = sorted(o for p, o in stored if p == partition)
        assert offsets == list(range(len(offsets)))  # dense and ordered within the partition
        # each writer's batches appear in the order they were acknowledged
        mine = [stored[(partition, o)] for o in offsets]
        for writer in range(WRITERS):
            seq = [v for v in mine if v.startswith(f"w{writer}-")]
            keys = [tuple(int(x[1:]) for x in v.split("-")[1:]) for v in seq]
            assert keys == sorted(keys)
