"""Acknowledged means durable: SIGKILL a producing process, reopen, find every acked record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamport.broker.embedded import EmbeddedBroker
from tests.broker.producer_process import TOPIC
from tests.broker.test_contract import fetch_n

ROOT = Path(__file__).resolve().parents[2]


def kill_mid_way(data: Path, acks: Path, life: int, min_lines: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("producer_process.py")),
            str(data),
            str(acks),
            str(life),
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if acks.exists() and acks.read_bytes().count(b"\n") >= min_lines:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    text = acks.read_bytes()
    acks.write_bytes(text[: text.rfind(b"\n") + 1])  # drop a line the kill cut in half


@pytest.mark.integration
async def test_acknowledged_records_survive_sigkill(tmp_path: Path) -> None:
    data, acks = tmp_path / "data", tmp_path / "acks.log"
    kill_mid_way(data, acks, life=1, min_lines=3000)
    # A second life, killed too, appends after the recovered tail.
    kill_mid_way(data, acks, life=2, min_lines=6000)

    acked: dict[str, tuple[int, int]] = {}
    for line in acks.read_text().splitlines():
        partition, offset, payload = line.split()
        assert payload not in acked, f"{payload} acknowledged twice"
        acked[payload] = (int(partition), int(offset))
    assert len(acked) >= 6000

    async with EmbeddedBroker(data) as broker:
        total = sum(m.high for m in await broker.watermarks(TOPIC))
        async with broker.consumer([TOPIC], auto_offset_reset="earliest") as consumer:
            records = await fetch_n(consumer, total, wait=60)
    assert len(records) == total
    stored: dict[str, tuple[int, int]] = {}
    for r in records:
        payload = r.value.rstrip(b".").decode()
        assert payload not in stored, f"{payload} stored twice"
        stored[payload] = (r.partition, r.offset)
    for payload, place in acked.items():
        assert stored.get(payload) == place, (
            f"acknowledged {payload} at {place}, found {stored.get(payload)}"
        )
    # Within a partition, each producer task's records are in the order it sent them.
    for p in range(3):
        last_seq: dict[str, int] = {}
        for r in sorted((r for r in records if r.partition == p), key=lambda r: r.offset):
            task, seq = r.value.rstrip(b".").decode().split("-")
            assert int(seq) > last_seq.get(task, -1)
            last_seq[task] = int(seq)
