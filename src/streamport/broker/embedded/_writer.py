"""The writer thread: the one door through which the embedded broker changes files.

Why a dedicated thread rather than ``asyncio.to_thread`` per write: group commit. Every produce,
offset commit and file operation is queued here; the thread takes everything queued at once and
turns it into one ``pwritev`` per partition file (plus one fsync per file with
``fsync="always"`` and one SQLite transaction for offset commits), then resolves all the waiting
futures together. Many concurrent producers therefore share one write, and one thread owning
the files keeps appends, segment rolls and deletions strictly ordered without locks. Reads do
not come here: they use ``asyncio.to_thread`` on immutable, already-acknowledged byte ranges.

The queue is bounded (``max_pending`` operations). A caller first takes a slot from an
``asyncio.Semaphore`` of the same size, so when the queue is full producers wait in the event
loop (backpressure) and the thread-side ``put`` never blocks.

Inline appends: with ``fsync=False`` an append is a ``pwritev`` into the page cache, a few
microseconds, while the crossing to the thread and back costs two wake-ups and a GIL hand-off
(measured under the fan-out benchmark: p50 5 ms, p99 35 ms, most of a write's latency). So when
nothing is queued ahead and the thread has nothing outstanding (every op handed to it has been
resolved, so it touches no file), ``append_many`` writes its batches before it returns, without
waiting for a loop turn, and a loop turn's queued appends are written by the loop, as one group
in the order the thread would. Anything else (fsync, offset commits, calls, a busy thread, more
than ``INLINE_BYTES`` at once) goes through the thread as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from streamport.broker.embedded._frame import encode_frame
from streamport.broker.embedded._offsets import OffsetStore
from streamport.broker.embedded._segment import Segment, create_segment
from streamport.errors import BrokerClosed, BrokerUnavailable, UnknownTopic

log = logging.getLogger(__name__)

T = TypeVar("T")

# Linux allows 1024 buffers per writev; each frame takes two (header, payload).
_MAX_IOV = 1024
# The most bytes the event loop appends itself (larger writes may wait on the page cache).
INLINE_BYTES = 1 << 20


class AppendResult(NamedTuple):
    base_offset: int
    position: int
    end: int
    rolled: Segment | None  # a new active segment created before this batch


class PartitionFile:
    """The writer thread's side of a partition: the active segment's descriptor and end.

    Touched only by the writer thread once the writer has started.
    """

    def __init__(self, directory: Path, active: Segment, *, segment_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.base = active.base
        self.next_offset = active.end_offset
        self.size = active.size
        self.batches = len(active.offsets)
        self.fd: int | None = None
        self.path = active.path
        self.deleted = False  # set (by the writer thread) when the topic is deleted

    def _open(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def roll(self, *, fsync: bool) -> Segment:
        """Close the active segment and start a new, empty one at the next offset."""
        if self.fd is not None and fsync:
            os.fsync(self.fd)
        self.close()
        seg = create_segment(self.directory, self.next_offset, fsync=fsync)
        self.base, self.size, self.batches, self.path = seg.base, seg.size, 0, seg.path
        return seg

    def append(
        self, ops: list[AppendOp], *, fsync: bool
    ) -> list[tuple[AppendOp, AppendResult | BaseException]]:
        """Write the batches of `ops` (rolling segments as they fill up); one result per op."""
        if self.deleted:
            gone = UnknownTopic(self.directory.parent.name)
            return [(op, gone) for op in ops]
        results: list[tuple[AppendOp, AppendResult | BaseException]] = []
        pending: list[tuple[AppendOp, AppendResult]] = []
        bufs: list[bytes] = []
        rolled: Segment | None = None
        start_size, start_offset = self.size, self.next_offset
        try:
            for op in ops:
                if self.batches and self.size >= self.segment_bytes:
                    self._flush(bufs, start_size)
                    results.extend(pending)
                    pending, bufs = [], []
                    rolled = self.roll(fsync=fsync)
                    start_size, start_offset = self.size, self.next_offset
                header = encode_frame(
                    self.next_offset, op.count, op.batch_ts, op.max_ts, op.payload
                )
                end = self.size + len(header) + len(op.payload)
                pending.append((op, AppendResult(self.next_offset, self.size, end, rolled)))
                rolled = None
                bufs += (header, op.payload)
                self.next_offset += op.count
                self.size = end
                self.batches += 1
                if len(bufs) >= _MAX_IOV:
                    self._flush(bufs, start_size)
                    results.extend(pending)
                    pending, bufs = [], []
                    start_size, start_offset = self.size, self.next_offset
            self._flush(bufs, start_size)
            results.extend(pending)
        except OSError as exc:
            # Undo the unacknowledged part so the file holds no batch nobody was told about.
            self.size, self.next_offset = start_size, start_offset
            self.batches = max(0, self.batches - len(pending))
            if self.fd is not None:
                try:
                    os.ftruncate(self.fd, start_size)
                except OSError:
                    log.exception("cannot truncate %s after a failed write", self.path)
                    raise
            error = BrokerUnavailable(f"cannot write to {self.path}: {exc}")
            error.__cause__ = exc
            done = {id(op) for op, _ in results}
            results.extend((op, error) for op in ops if id(op) not in done)
        return results

    def _flush(self, bufs: list[bytes], position: int) -> None:
        if not bufs:
            return
        fd = self._open()
        total = sum(len(b) for b in bufs)
        written = os.pwritev(fd, bufs, position)
        if written != total:  # a short write: finish it byte-exactly
            rest = b"".join(bufs)[written:]
            while rest:
                n = os.pwrite(fd, rest, position + written)
                written += n
                rest = rest[n:]

    def sync(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)


@dataclass(slots=True, eq=False)
class AppendOp:
    file: PartitionFile
    payload: bytes
    count: int
    batch_ts: int
    max_ts: int
    on_done: Callable[[AppendResult], None]
    future: asyncio.Future[AppendResult] = field(repr=False)


@dataclass(slots=True, eq=False)
class CommitOp:
    rows: list[tuple[str, str, int, int]]
    on_done: Callable[[None], None]
    future: asyncio.Future[None] = field(repr=False)


@dataclass(slots=True, eq=False)
class CallOp:
    fn: Callable[[], Any]
    future: asyncio.Future[Any] = field(repr=False)


_STOP = object()
_Op = AppendOp | CommitOp | CallOp


class Writer:
    """Owns the writer thread. ``start()`` / ``aclose()``; submit work with the async methods."""

    def __init__(self, offsets: OffsetStore, *, fsync: bool, max_pending: int = 1024) -> None:
        self.offsets = offsets
        self._fsync = fsync
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_pending + 1)
        self._slots = asyncio.Semaphore(max_pending)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._closing = False
        self._pending: list[_Op] = []  # ops of this loop turn, handed over together
        self._outstanding = 0  # ops handed to the thread and not yet resolved (loop side)
        self.files: list[PartitionFile] = []  # closed when the thread stops

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="streamport-log-writer", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        if self._thread is None or self._closing:
            return
        self._closing = True
        self._hand_over()  # what this loop turn queued goes before the stop
        self._queue.put(_STOP)  # the queue has one spare place for it
        assert self._stopped is not None
        await self._stopped
        self._thread.join()

    async def append_many(
        self,
        batches: list[
            tuple[tuple[PartitionFile, bytes, int, int, int], Callable[[AppendResult], None]]
        ],
    ) -> list[AppendResult]:
        """Queue one batch per partition; return their results once all are durable.

        Raises the first failure, after every batch has been settled.
        """
        ops = [
            AppendOp(file, payload, count, batch_ts, max_ts, on_done, self._new_future())
            for (file, payload, count, batch_ts, max_ts), on_done in batches
        ]
        if not self._pending and self._inline_ok(ops):
            # Nothing queued ahead of these and the thread idle: written before this returns,
            # without waiting for a loop turn (see the module docstring).
            self._resolve(self._write_inline(ops), slots=False)  # they took no queue slot
        else:
            for op in ops:
                await self._enqueue(op)
        futures = [op.future for op in ops]
        if len(futures) == 1:
            return [await futures[0]]
        settled = await asyncio.gather(*futures, return_exceptions=True)
        for item in settled:
            if isinstance(item, BaseException):
                raise item
        return settled  # type: ignore[return-value]

    async def commit(
        self, rows: list[tuple[str, str, int, int]], on_done: Callable[[None], None]
    ) -> None:
        fut: asyncio.Future[None] = self._new_future()
        await self._submit(CommitOp(rows, on_done, fut))

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the writer thread, after everything queued before it."""
        fut: asyncio.Future[T] = self._new_future()
        result: T = await self._submit(CallOp(fn, fut))
        return result

    def _new_future(self) -> asyncio.Future[Any]:
        if self._closing or self._loop is None:
            raise BrokerClosed("the broker is closed")
        if self._failure is not None:
            raise BrokerUnavailable(f"the log writer failed: {self._failure}") from self._failure
        return self._loop.create_future()

    async def _submit(self, op: _Op) -> Any:
        await self._enqueue(op)
        return await op.future

    async def _enqueue(self, op: _Op) -> None:
        # When all slots are taken the caller waits here, in the loop: that is the backpressure.
        await self._slots.acquire()
        if self._closing:
            self._slots.release()
            raise BrokerClosed("the broker is closed")
        # Ops queued during one turn of the event loop cross to the thread as one list: one
        # queue.put (and one thread wake-up) per loop turn instead of per produce call.
        self._pending.append(op)
        if len(self._pending) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self._failure is not None:  # the thread is gone: fail them here, do not strand them
            error = BrokerUnavailable(f"the log writer failed: {self._failure}")
            self._resolve([(op, None, error) for op in pending])
            return
        if self._inline_ok(pending):
            self._resolve(self._write_inline(pending))
            return
        self._outstanding += len(pending)
        self._queue.put_nowait(pending)  # never full: each list holds at least one slot's op

    def _inline_ok(self, ops: Sequence[_Op]) -> bool:
        """Whether the loop may write `ops` itself: only appends, no fsync, not too large, and
        the thread holds nothing back (every op handed to it resolved, so it touches no file)."""
        if self._fsync or self._outstanding or self._closing or self._failure is not None:
            return False
        size = 0
        for op in ops:
            if type(op) is not AppendOp:
                return False
            size += len(op.payload)
        return size <= INLINE_BYTES

    def _write_inline(self, ops: Sequence[_Op]) -> list[tuple[_Op, Any, BaseException | None]]:
        try:
            return self._write_group(ops)
        except BaseException as exc:  # a bug: fail these and stop, as the thread would
            log.exception("the log writer failed")
            self._failure = exc
            failed = BrokerUnavailable(f"the log writer failed: {exc}")
            return [(op, None, failed) for op in ops]

    # --- loop side ---------------------------------------------------------------------------

    def _from_thread(self, done: list[tuple[_Op, Any, BaseException | None]]) -> None:
        self._outstanding -= len(done)
        self._resolve(done)

    def _resolve(
        self, done: list[tuple[_Op, Any, BaseException | None]], *, slots: bool = True
    ) -> None:
        for op, result, error in done:
            if slots:
                self._slots.release()
            if error is None and not isinstance(op, CallOp):
                op.on_done(result)
            if op.future.done():
                continue  # the caller was cancelled; the write happened all the same
            if error is not None:
                op.future.set_exception(error)
            else:
                op.future.set_result(result)

    def _finish(self) -> None:
        assert self._stopped is not None
        if not self._stopped.done():
            self._stopped.set_result(None)

    # --- thread side -------------------------------------------------------------------------

    def _post(self, done: list[tuple[_Op, Any, BaseException | None]]) -> None:
        if done:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._from_thread, done)

    def _run(self) -> None:
        stop = False
        try:
            while not stop:
                batch = self._take(self._queue.get())
                while True:
                    try:
                        batch.extend(self._take(self._queue.get_nowait()))
                    except queue.Empty:
                        break
                group: list[_Op] = []
                for item in batch:
                    if item is _STOP:
                        stop = True
                        continue
                    assert isinstance(item, AppendOp | CommitOp | CallOp)
                    if isinstance(item, CallOp):
                        self._post(self._write_group(group))
                        group = []
                        if self._failure is not None:
                            raise self._failure
                        self._post([self._call(item)])
                    else:
                        group.append(item)
                self._post(self._write_group(group))
                if self._failure is not None:
                    raise self._failure
        except BaseException as exc:  # a bug or a failed fsync: fail everyone, loudly
            log.exception("the log writer thread failed")
            self._failure = exc
            self._fail_queued(exc)
        finally:
            for f in self.files:
                try:
                    f.close()
                except OSError:
                    log.exception("cannot close %s", f.path)
            self.offsets.close()
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._finish)

    @staticmethod
    def _take(item: object) -> list[object]:
        return item if isinstance(item, list) else [item]

    def _fail_queued(self, exc: BaseException) -> None:
        error = BrokerUnavailable(f"the log writer failed: {exc}")
        done: list[tuple[_Op, Any, BaseException | None]] = []
        while True:
            try:
                items = self._take(self._queue.get_nowait())
            except queue.Empty:
                break
            done.extend(
                (i, None, error) for i in items if isinstance(i, AppendOp | CommitOp | CallOp)
            )
        self._post(done)

    def _call(self, op: CallOp) -> tuple[_Op, Any, BaseException | None]:
        try:
            return op, op.fn(), None
        except Exception as exc:
            return op, None, exc

    def _write_group(self, group: Sequence[_Op]) -> list[tuple[_Op, Any, BaseException | None]]:
        if not group:
            return []
        by_file: dict[int, list[AppendOp]] = {}
        files: dict[int, PartitionFile] = {}
        commits: list[CommitOp] = []
        for op in group:
            if isinstance(op, AppendOp):
                by_file.setdefault(id(op.file), []).append(op)
                files[id(op.file)] = op.file
            elif isinstance(op, CommitOp):
                commits.append(op)
        done: list[tuple[_Op, Any, BaseException | None]] = []
        for key, ops in by_file.items():
            for op, res in files[key].append(ops, fsync=self._fsync):
                if isinstance(res, BaseException):
                    done.append((op, None, res))
                else:
                    done.append((op, res, None))
        if self._fsync:
            try:
                for f in files.values():
                    f.sync()
            except OSError as exc:
                # After a failed fsync the page cache state is unknown: acknowledge nothing
                # more, and stop the writer (``_run`` sees ``_failure``).
                self._failure = exc
                error = BrokerUnavailable(f"fsync failed: {exc}")
                error.__cause__ = exc
                done = [(op, None, error) for op, _, _ in done]
        if commits:
            try:
                self.offsets.save([row for c in commits for row in c.rows])
                done.extend((c, None, None) for c in commits)
            except Exception as exc:
                error = BrokerUnavailable(f"cannot store committed offsets: {exc}")
                error.__cause__ = exc
                done.extend((c, None, error) for c in commits)
        return done
