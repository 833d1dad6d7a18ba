"""Consuming bulk topics a batch at a time (the matcher's).

Handling a message at a time costs more CPU than the message's work: a faust agent that
did nothing with its messages cost ≈100 µs of CPU per message here, against ≈4 µs for
aiokafka's `getmany` (bench/README.md). The matcher's two bulk topics
(`liscio.account-events`, `qbo.customers`) are therefore read by a `BatchConsumer`: one
aiokafka consumer in the service's group (`{prefix}qbsync-{service}`, the group that
`qbsync lag` and `qbsync rewind` name), started and stopped by qbsync/bootstrap.py.

Each poll's records of one topic are parsed, invalid ones go to the dead-letter topic, and
the valid ones are handed to the topic's handler as one batch; a batch that keeps failing
for a reason other than a dependency being down is retried one message at a time, and the
message that fails goes to the dead-letter topic with the error: the partition moves on.
Offsets are committed only once a batch's effects are stored (at-least-once; handlers are
idempotent), and a rebalance waits for the batch in hand, so revoked partitions are left
with everything done committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from pydantic import BaseModel, ValidationError

from qbsync import metrics, tracing
from qbsync.kafka.dead_letters import DeadLetterSink
from qbsync.kafka.groups import join_group, leave_group
from qbsync.kafka.topics import spec_of
from qbsync.retry import Backoff, is_transient, pause_after_failure
from qbsync.waiting import finish_or_cancel

log = logging.getLogger("qbsync.kafka.batches")

M = TypeVar("M", bound=BaseModel)
BatchHandler = Callable[[list[M]], Awaitable[None]]
Record: TypeAlias = ConsumerRecord[bytes, bytes]

# Records per poll across the assigned partitions: one upsert per topic per poll. Larger
# polls cost no less per record (the upsert is linear) and hold more in memory.
MAX_RECORDS = 2000
# How long a stopping worker lets the batch in hand finish before cancelling it (it is
# then read again after the restart: at-least-once).
STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class BatchInput(Generic[M]):
    """One input topic (its catalogue name), the model of its values and its handler."""

    topic: str
    model: type[M]
    handle: BatchHandler[M]


async def process_batch(
    records: Sequence[Record],
    source: BatchInput[Any],
    dead_letters: DeadLetterSink,
) -> None:
    """Parse `records` (invalid ones to the dead-letter topic), then handle the valid ones
    as one batch, isolating a message that fails on its own."""
    started = time.perf_counter()
    topic, model = source.topic, source.model
    parsed: list[tuple[Record, Any]] = []
    for record in records:
        try:
            parsed.append((record, model.model_validate_json(record.value or b"")))
        except ValidationError as exc:
            metrics.MESSAGES_FAILED.labels(topic).inc()
            await dead_letters.send(topic, record, exc)
    if parsed:
        with tracing.batch_span(f"consume {topic}", records):
            await _handle_or_isolate(parsed, source, dead_letters)
    metrics.MESSAGES_CONSUMED.labels(topic).inc(len(records))
    metrics.PROCESSING_SECONDS.labels(topic).observe(
        (time.perf_counter() - started) / max(len(records), 1)
    )


async def _handle_or_isolate(
    parsed: list[tuple[Record, Any]], source: BatchInput[Any], dead_letters: DeadLetterSink
) -> None:
    topic = source.topic
    backoff = Backoff()
    while True:
        try:
            await source.handle([value for _, value in parsed])
            return
        except Exception as exc:
            if is_transient(exc):  # retried until it goes through: nothing is lost
                await pause_after_failure(f"a batch of {topic}", exc, backoff)
                continue
            metrics.MESSAGES_FAILED.labels(topic).inc(len(parsed))
            if len(parsed) == 1:
                record, _ = parsed[0]
                log.error(
                    "message failed: %s", exc, extra={"topic": topic, "offset": record.offset}
                )
                await dead_letters.send(topic, record, exc)
                return
            log.warning(
                "batch failed, isolating the failing message: %s", exc, extra={"topic": topic}
            )
            for one in parsed:
                await _handle_or_isolate([one], source, dead_letters)
            return


class BatchConsumer:
    """Reads `inputs` in the consumer group `group` (already prefixed) with aiokafka."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        group: str,
        inputs: Sequence[BatchInput[Any]],
        dead_letters: DeadLetterSink,
        *,
        connect_attempts: int = 10,
        max_records: int = MAX_RECORDS,
    ) -> None:
        for source in inputs:
            spec_of(source.topic)  # only catalogued topics may be consumed
        self.inputs = {prefix + source.topic: source for source in inputs}
        self.dead_letters = dead_letters
        self.connect_attempts = connect_attempts
        self.max_records = max_records
        self.bootstrap = bootstrap
        self.group = group
        self._consumer: AIOKafkaConsumer | None = None
        # Held while a batch is handled and committed; a rebalance waits for it.
        self._batch_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (bounded attempts), subscribe, and consume in a task of its own."""
        consumer = self._consumer = await join_group(
            self.bootstrap,
            self.group,
            self.inputs,
            max_records=self.max_records,
            attempts=self.connect_attempts,
            listener=_CommitBeforeRevoke(self),
        )
        self._loop_task = asyncio.ensure_future(self._consume(consumer))

    async def stop(self) -> None:
        self._stopping.set()
        if self._loop_task is not None and not await finish_or_cancel(
            [self._loop_task], STOP_GRACE_SECONDS
        ):
            log.warning("batch still in hand at stop: it will be read again")
        if self._consumer is not None:
            await leave_group(self._consumer, self.group)

    @property
    def consuming(self) -> asyncio.Task[None]:
        """Ends once stopped; raises if consuming could not go on."""
        assert self._loop_task is not None, "not started"
        return self._loop_task

    async def batch_in_hand_committed(self) -> None:
        """Returns once no batch is being handled: each batch commits its own offsets
        before it lets go of the lock."""
        async with self._batch_lock:
            pass

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            fetched = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
            if not fetched:
                continue
            async with self._batch_lock:
                await self._process(consumer, fetched)

    async def _process(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Record]]
    ) -> None:
        # A rebalance may have taken partitions away while this poll waited for the lock:
        # their records are now another member's to read.
        assigned = consumer.assignment()
        by_topic: dict[str, list[Record]] = {}
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in fetched.items():
            if tp not in assigned or not records:
                continue
            # Partitions one after another, each in order: an account's events stay in order.
            by_topic.setdefault(tp.topic, []).extend(records)
            done[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
        for topic, records in by_topic.items():
            await process_batch(records, self.inputs[topic], self.dead_letters)
        if not done:
            return
        try:
            await consumer.commit(done)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner reads these records again.
            log.warning("commit refused after a rebalance: %s", exc)


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are given up only after the batch in hand is handled and committed."""

    def __init__(self, consumer: BatchConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.consumer.batch_in_hand_committed()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)},
        )
