"""``streamport produce``: JSON lines to records, sent in batches, with a progress bar for files."""

from __future__ import annotations

from typing import IO, Any

import msgspec
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from streamport.cli._client import AdminClient


def line_to_record(item: Any) -> dict[str, Any]:
    """An object with a "value" is a record; any other JSON value is the record's value."""
    if isinstance(item, dict) and "value" in item:
        return item
    return {"value": item}


def produce_lines(
    client: AdminClient, topic: str, source: IO[bytes], batch_size: int, *, total_bytes: int | None
) -> tuple[int, int]:
    """Send every valid line of `source`; report malformed ones on stderr. Returns (written, bad)."""
    written = bad = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal written
        if batch:
            client.request("POST", f"/topics/{topic}/records", json=batch)
            written += len(batch)
            batch.clear()

    progress = Progress(
        TextColumn("[bold]producing"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=total_bytes is None,
    )
    with progress:
        task = progress.add_task("produce", total=total_bytes)
        for number, raw in enumerate(source, start=1):
            progress.advance(task, len(raw))
            if not raw.strip():
                continue
            try:
                batch.append(line_to_record(msgspec.json.decode(raw)))
            except msgspec.DecodeError as exc:
                bad += 1
                typer.echo(f"line {number}: malformed JSON ({exc}); skipped", err=True)
                continue
            if len(batch) >= batch_size:
                flush()
        flush()
    return written, bad
