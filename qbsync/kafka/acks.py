"""Consuming a topic whose messages are acknowledged out of order (the pusher's).

The pusher applies different accounts' events concurrently, so a later offset is often done
before an earlier one. Kafka keeps one committed position per partition, so the only safe
position is the lowest offset not yet acknowledged: everything below it is done (the rule
is `PartitionAcks.committable`, a few lines with their own tests).

`AcknowledgingConsumer` is a plain aiokafka consumer in the service's group, started and
stopped by qbsync/bootstrap.py like the matcher's `BatchConsumer`. It hands each record to its
handler with an `ack` callback, commits each partition's contiguous acknowledged prefix
about once a second and when partitions are revoked or the consumer stops, and pauses
fetching while the handler has no room, without ever leaving the group for not polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from qbsync.kafka.groups import join_group, leave_group
from qbsync.kafka.topics import spec_of
from qbsync.waiting import finish_or_cancel

log = logging.getLogger("qbsync.kafka.acks")

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Ack = Callable[[], Awaitable[None]]
# The handler takes a record and the callback that acknowledges it once it is applied.
AckedHandler = Callable[[Record, Ack], Awaitable[None]]

COMMIT_INTERVAL_SECONDS = 1.0
MAX_RECORDS = 500


class PartitionAcks:
    """The offsets of one partition handed out since its assignment, and which are done."""

    def __init__(self) -> None:
        self._handed_out: deque[int] = deque()
        self._acked: set[int] = set()
        self._next: int | None = None  # one past the last offset handed out

    def handed_out(self, offset: int) -> None:
        self._handed_out.append(offset)
        self._next = offset + 1

    def acked(self, offset: int) -> None:
        self._acked.add(offset)

    def committable(self) -> int | None:
        """The position to commit: the lowest offset handed out and not acknowledged, or one
        past the last when all are; None before anything was handed out."""
        while self._handed_out and self._handed_out[0] in self._acked:
            self._acked.discard(self._handed_out.popleft())
        if self._handed_out:
            return self._handed_out[0]
        return self._next


@dataclass(frozen=True)
class AckedInput:
    """The topic (its catalogue name), the handler, and how much room it has for more
    records (fetching pauses at 0)."""

    topic: str
    handle: AckedHandler
    room: Callable[[], int]
    # Awaited when the consumer stops, before its last commit: lets the applies under way
    # finish, so that their acknowledgements are committed.
    finish: Callable[[], Awaitable[None]]


class AckTracker:
    """Every assigned partition's `PartitionAcks`. An acknowledgement of a record handed out
    before its partition was revoked is ignored: the partition's new owner reads it again."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, PartitionAcks] = {}
        self._committed: dict[TopicPartition, int] = {}

    def hand_out(self, record: Record) -> Ack:
        tp = TopicPartition(record.topic, record.partition)
        acks = self._partitions.setdefault(tp, PartitionAcks())
        acks.handed_out(record.offset)

        async def ack() -> None:
            if self._partitions.get(tp) is acks:
                acks.acked(record.offset)

        return ack

    def to_commit(self, among: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Positions that moved since they were last committed."""
        moved = {}
        for tp, acks in self._partitions.items():
            if among is not None and tp not in among:
                continue
            position = acks.committable()
            if position is not None and position != self._committed.get(tp):
                moved[tp] = position
        return moved

    def committed(self, positions: dict[TopicPartition, int]) -> None:
        self._committed.update(positions)

    def forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._partitions.pop(tp, None)
            self._committed.pop(tp, None)


class AcknowledgingConsumer:
    """Reads `source.topic` (prefixed) in the consumer group `group` (already prefixed)."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        group: str,
        source: AckedInput,
        *,
        connect_attempts: int = 10,
        commit_interval: float = COMMIT_INTERVAL_SECONDS,
    ) -> None:
        spec_of(source.topic)  # only catalogued topics may be consumed
        self.topic = prefix + source.topic
        self.source = source
        self.bootstrap = bootstrap
        self.group = group
        self.connect_attempts = connect_attempts
        self.commit_interval = commit_interval
        self.tracker = AckTracker()
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (bounded attempts), subscribe, and consume in a task of its own."""
        consumer = self._consumer = await join_group(
            self.bootstrap,
            self.group,
            [self.topic],
            max_records=MAX_RECORDS,
            attempts=self.connect_attempts,
            listener=_CommitBeforeRevoke(self),
        )
        self._loop_task = asyncio.ensure_future(self._consume(consumer))

    async def stop(self) -> None:
        self._stopping.set()
        # The applies under way finish first: the loop may be waiting for the handler to
        # have room, which only a finishing handler makes.
        await self.source.finish()
        if self._loop_task is not None:
            await finish_or_cancel([self._loop_task], 1.0)
        if self._consumer is not None:
            await self.commit_done()
            await leave_group(self._consumer, self.group)

    @property
    def consuming(self) -> asyncio.Task[None]:
        """Ends once stopped; raises if consuming could not go on."""
        assert self._loop_task is not None, "not started"
        return self._loop_task

    async def commit_done(self, among: set[TopicPartition] | None = None) -> dict[int, int]:
        """Commit what is done (of `among`, or of every partition); returns the positions
        committed, by partition."""
        consumer = self._consumer
        positions = self.tracker.to_commit(among)
        if consumer is None or not positions:
            return {}
        try:
            await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in positions.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner reads those records again.
            log.warning("commit refused after a rebalance: %s", exc)
            return {}
        self.tracker.committed(positions)
        return {tp.partition: offset for tp, offset in positions.items()}

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        last_commit = time.monotonic()
        while not self._stopping.is_set():
            room = self.source.room()
            assigned = consumer.assignment()
            # Paused partitions are still polled (returning nothing), so the member never
            # looks dead to the group however long the handler stays full.
            if room <= 0:
                consumer.pause(*assigned)
            else:
                consumer.resume(*assigned)
            fetched = await consumer.getmany(
                timeout_ms=200, max_records=max(1, min(room, MAX_RECORDS))
            )
            for tp, records in fetched.items():
                if tp not in consumer.assignment():
                    continue  # revoked while this poll waited: the new owner reads them
                for record in records:
                    await self.source.handle(record, self.tracker.hand_out(record))
            if time.monotonic() - last_commit >= self.commit_interval:
                await self._commit_or_wait()
                last_commit = time.monotonic()

    async def _commit_or_wait(self) -> None:
        try:
            await self.commit_done()
        except KafkaError as exc:  # the broker restarting: the next round commits it
            log.warning("commit failed, trying again next round: %s", exc)


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revoked partitions are left with what is done committed; what is still being
    applied is read again by their new owner (applying an event twice changes nothing)."""

    def __init__(self, consumer: AcknowledgingConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = set(revoked)
        try:
            await self.consumer.commit_done(gone)
        except KafkaError as exc:
            log.warning("commit at revocation failed: %s", exc)
        self.consumer.tracker.forget(gone)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)},
        )
