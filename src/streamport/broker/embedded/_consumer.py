"""Consumers of the embedded broker: positions, fetch (woken by new data), seeks and commits.

Group membership lives in the broker (``EmbeddedBroker._rebalance``): when a member joins or
leaves, the partitions of each topic are dealt out again among the members that read it, and a
member that gets a partition starts at the group's committed offset (else at
``auto_offset_reset``). Uncommitted progress on a partition that moves is read again by its new
owner: delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Self

from streamport.broker.base import ConsumedRecord, OffsetReset, TopicPartition
from streamport.broker.embedded._segment import ReadPlan, read_frames
from streamport.errors import BrokerClosed, BrokerError, InvalidOffset

if TYPE_CHECKING:
    from streamport.broker.embedded._broker import EmbeddedBroker


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ConsumerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class EmbeddedConsumer:
    """See :class:`streamport.broker.base.Consumer`."""

    def __init__(
        self, broker: EmbeddedBroker, topics: list[str], group: str | None, reset: OffsetReset
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.group = group
        self.auto_offset_reset: OffsetReset = reset
        self.state = ConsumerState.NEW
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._turn = 0  # rotates which partition a fetch serves first

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self.state is not ConsumerState.NEW:
            raise BrokerClosed(f"the consumer cannot start: it is {self.state.value}")
        self.broker._attach(self)
        self.state = ConsumerState.RUNNING

    async def aclose(self) -> None:
        if self.state is ConsumerState.CLOSED:
            return
        was_running = self.state is ConsumerState.RUNNING
        self.state = ConsumerState.CLOSED
        if was_running:
            self.broker._detach(self)
        self._wake()

    def _running(self) -> None:
        if self.state is not ConsumerState.RUNNING:
            raise BrokerClosed(f"the consumer is {self.state.value}, not running")

    # --- called by the broker ----------------------------------------------------------------

    def _set_assignment(self, tps: frozenset[TopicPartition]) -> None:
        positions = {}
        for tp in tps:
            old = self._positions.get(tp)
            positions[tp] = (
                old
                if old is not None
                else self.broker._initial_position(self.group, tp, self.auto_offset_reset)
            )
        self._positions = positions
        self._assignment = tps
        self._wake()

    def _topic_deleted(self, topic: str) -> None:
        if topic in self.topics:
            self._assignment = frozenset(tp for tp in self._assignment if tp.topic != topic)
            self._positions = {tp: o for tp, o in self._positions.items() if tp.topic != topic}
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- reading -----------------------------------------------------------------------------

    def assignment(self) -> frozenset[TopicPartition]:
        return self._assignment

    async def position(self, tp: TopicPartition) -> int:
        self._running()
        return self._positions[self._assigned(tp)]

    def _assigned(self, tp: TopicPartition) -> TopicPartition:
        tp = TopicPartition(*tp)
        if tp not in self._positions:
            raise BrokerError(
                f"{tp.topic}[{tp.partition}] is not assigned to this consumer "
                f"(assigned: {sorted(self._assignment)})"
            )
        return tp

    def _plans(self, max_records: int) -> list[ReadPlan]:
        plans = []
        for tp, pos in self._positions.items():
            lg = self.broker._log(tp)
            if not lg.low <= pos <= lg.high:
                # Out of range (retention deleted it, or a seek past the end): reset as Kafka does.
                pos = lg.low if self.auto_offset_reset == "earliest" else lg.high
                self._positions[tp] = pos
            plan = lg.plan(pos, max_records)
            if plan is not None:
                plans.append(plan)
        return plans

    async def fetch(self, max_records: int = 1000, timeout: float = 1.0) -> list[ConsumedRecord]:
        self._running()
        if max_records < 1:
            raise InvalidOffset(f"max_records must be at least 1, not {max_records}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._running()
            plans = self._plans(max_records)
            if plans:
                read = self._read_tails(plans)
                if read is None:
                    read = await asyncio.to_thread(read_frames, plans)
                records = self._take(read, max_records)
                if records:
                    return records
                continue  # positions moved meanwhile (seek, rebalance, retention): plan again
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            waiter: asyncio.Future[None] = loop.create_future()
            logs = [self.broker._log(tp) for tp in self._positions]
            for lg in logs:
                lg.waiters.add(waiter)
            self._waiter = waiter
            # awaited directly, with a timer for the timeout: the task resumes in the loop turn
            # right after a produce wakes it (asyncio.wait would take one more turn, and the
            # writers that produce woke would all run first)
            timer = loop.call_later(remaining, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
                for lg in logs:
                    lg.waiters.discard(waiter)
                if not waiter.done():
                    waiter.cancel()

    def _read_tails(
        self, plans: list[ReadPlan]
    ) -> list[tuple[ReadPlan, list[ConsumedRecord]]] | None:
        """Every plan read from its partition's in-memory tail, or None if one is not there."""
        read = []
        for plan in plans:
            lg = self.broker._log(TopicPartition(plan.topic, plan.partition))
            records = lg.read_tail(plan.offset, plan.limit)
            if records is None:
                return None
            read.append((plan, records))
        return read

    def _take(
        self, read: list[tuple[ReadPlan, list[ConsumedRecord]]], max_records: int
    ) -> list[ConsumedRecord]:
        """Records to return, partitions in rotating order; positions move past them."""
        if not read:
            return []
        self._turn = (self._turn + 1) % len(read)
        out: list[ConsumedRecord] = []
        for plan, records in read[self._turn :] + read[: self._turn]:
            tp = TopicPartition(plan.topic, plan.partition)
            if not records or self._positions.get(tp) != plan.offset:
                continue  # nothing read, or the position moved while reading
            room = max_records - len(out)
            if room <= 0:
                break
            if len(records) > room:
                records = records[:room]
            out.extend(records)
            self._positions[tp] = records[-1].offset + 1
        return out

    # --- seeking and committing --------------------------------------------------------------

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self._running()
        tp = self._assigned(tp)
        if offset < 0:
            raise InvalidOffset(
                f"cannot seek {tp.topic}[{tp.partition}] to negative offset {offset}"
            )
        self._positions[tp] = offset
        self._wake()

    def _targets(self, tps: Sequence[TopicPartition] | None) -> list[TopicPartition]:
        self._running()
        return [self._assigned(tp) for tp in tps] if tps is not None else list(self._positions)

    async def seek_to_beginning(self, tps: Sequence[TopicPartition] | None = None) -> None:
        for tp in self._targets(tps):
            self._positions[tp] = self.broker._log(tp).low
        self._wake()

    async def seek_to_end(self, tps: Sequence[TopicPartition] | None = None) -> None:
        for tp in self._targets(tps):
            self._positions[tp] = self.broker._log(tp).high
        self._wake()

    async def seek_to_timestamp(
        self, timestamp_ms: int, tps: Sequence[TopicPartition] | None = None
    ) -> None:
        for tp in self._targets(tps):
            lg = self.broker._log(tp)
            offset = lg.high
            plan = lg.plan_for_timestamp(timestamp_ms)
            if plan is not None:
                [(_, records)] = await asyncio.to_thread(read_frames, [plan])
                offset = next((r.offset for r in records if r.timestamp_ms >= timestamp_ms), offset)
            if tp in self._positions:
                self._positions[tp] = offset
        self._wake()

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._running()
        if self.group is None:
            raise BrokerError(
                "this consumer has no group, so it cannot commit offsets: create it with "
                "broker.consumer(topics, group=...)"
            )
        if offsets is None:
            offsets = dict(self._positions)
        await self.broker._commit(self.group, {TopicPartition(*tp): o for tp, o in offsets.items()})
