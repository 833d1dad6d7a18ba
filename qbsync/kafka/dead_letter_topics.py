"""Reading a dead-letter topic and putting its messages back (`qbsync dlq`).

Progress of redrives is kept by Kafka itself: the consumer group
`{prefix}qbsync-dlq-redrive-{topic}` commits, on `<topic>.dlq`, the offset up to which
messages were put back (or discarded). A redrive starts there and stops at the end offset
it saw when it started, so running it twice moves nothing the second time, and a message
that fails again after a redrive lands after that end and waits for the next redrive.

The group never joins (partitions are assigned by hand), so redrives of one topic must not
run at the same time; a redrive that dies between putting a batch back and committing puts
that batch back again next time, which consumers absorb (event ids are idempotent).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from qbsync.errors import QbsyncError
from qbsync.kafka.admin import kafka_admin
from qbsync.kafka.dead_letter_view import StoredDeadLetter, parse_dead_letter
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import all_specs, dlq_of
from qbsync.retry import with_backoff

REDRIVE_GROUP = "qbsync-dlq-redrive-{topic}"
READ_TIMEOUT_SECONDS = 30.0


class DeadLetterError(QbsyncError):
    """A dead-letter request that cannot be met (unknown topic, no such offset, ...)."""


def topics_with_dead_letters() -> list[str]:
    return sorted(spec.name for spec in all_specs() if spec.has_dlq)


def redrive_group(prefix: str, topic: str) -> str:
    return prefix + REDRIVE_GROUP.format(topic=topic)


@dataclass(frozen=True)
class RedriveResult:
    moved: int  # put back onto the topic
    skipped: int  # dead letters that could not be read, passed over
    discarded: int  # passed over on purpose (`discard`)


OnLetter = Callable[[StoredDeadLetter], Awaitable[None]]


class DeadLetterTopic:
    """The dead-letter topic of one input topic, e.g. `liscio.account-events`."""

    def __init__(self, bootstrap: str, prefix: str, topic: str, attempts: int = 3) -> None:
        if topic not in topics_with_dead_letters():
            raise DeadLetterError(
                f"{topic} has no dead-letter topic; these do: "
                + ", ".join(topics_with_dead_letters())
            )
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.topic = topic
        self.name = prefix + dlq_of(topic)
        self.group = redrive_group(prefix, topic)
        self.attempts = attempts

    async def letters(self) -> list[StoredDeadLetter]:
        """Every dead letter the topic still holds, oldest first."""
        found: list[StoredDeadLetter] = []

        async def keep(letter: StoredDeadLetter) -> None:
            found.append(letter)

        await self._scan(keep, from_redrive_mark=False, commit=False)
        return found

    async def letter(self, offset: int, partition: int = 0) -> StoredDeadLetter:
        async with self._reader() as reader:
            tp = await reader.partition(partition)
            reader.consumer.assign([tp])
            start, end = await reader.bounds(tp)
            if not start <= offset < end:
                held = f"offsets {start} to {end - 1}" if end > start else "no messages"
                raise DeadLetterError(
                    f"no dead letter at offset {offset} of {self.name}[{partition}] "
                    f"(it holds {held})"
                )
            reader.consumer.seek(tp, offset)
            mark = await reader.redrive_mark(tp)
            async with aclosing(reader.records(tp, end)) as records:
                async for record in records:
                    if record.offset == offset:
                        return parse_dead_letter(
                            tp.partition, offset, record.key, record.value, offset < mark
                        )
        raise DeadLetterError(f"offset {offset} of {self.name}[{partition}] was not found")

    async def redrive(self, producer: Producer) -> RedriveResult:
        """Put every dead letter not yet redriven back onto its topic (original key and value)."""
        moved = skipped = 0

        async def put_back(letter: StoredDeadLetter) -> None:
            nonlocal moved, skipped
            original = letter.original_value
            if original is None:
                skipped += 1
                return
            await producer.send(self.topic, letter.key, original)
            moved += 1

        await self._scan(put_back, from_redrive_mark=True, commit=True)
        return RedriveResult(moved=moved, skipped=skipped, discarded=0)

    async def discard(self) -> RedriveResult:
        """Mark every dead letter not yet redriven as handled without putting it back."""
        discarded = 0

        async def drop(_: StoredDeadLetter) -> None:
            nonlocal discarded
            discarded += 1

        await self._scan(drop, from_redrive_mark=True, commit=True)
        return RedriveResult(moved=0, skipped=0, discarded=discarded)

    async def _scan(self, on_letter: OnLetter, *, from_redrive_mark: bool, commit: bool) -> None:
        async with self._reader() as reader:
            partitions = await reader.partitions()
            reader.consumer.assign(partitions)
            for tp in partitions:
                start, end = await reader.bounds(tp)
                mark = await reader.redrive_mark(tp)
                begin = max(start, mark) if from_redrive_mark else start
                if begin >= end:
                    continue
                reader.consumer.seek(tp, begin)
                async for record in reader.records(tp, end):
                    letter = parse_dead_letter(
                        tp.partition, record.offset, record.key, record.value, record.offset < mark
                    )
                    await on_letter(letter)
                    if commit:
                        # One commit per letter: a redrive cut short resumes where it stopped.
                        await reader.consumer.commit({tp: record.offset + 1})

    def _reader(self) -> _Reader:
        return _Reader(self, self.attempts)


class _Reader:
    """A consumer of the dead-letter topic, in the redrive group, with assigned partitions."""

    def __init__(self, topic: DeadLetterTopic, attempts: int) -> None:
        self.topic = topic
        self.attempts = attempts
        self.consumer: Any = None

    async def __aenter__(self) -> _Reader:
        async def connect() -> Any:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.topic.bootstrap,
                group_id=self.topic.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            return consumer

        self.consumer = await with_backoff("Kafka", connect, self.attempts)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def partitions(self) -> list[Any]:
        return [TopicPartition(self.topic.name, p) for p in await self._partition_numbers()]

    async def partition(self, number: int) -> Any:
        if number not in await self._partition_numbers():
            raise DeadLetterError(f"{self.topic.name} has no partition {number}")
        return TopicPartition(self.topic.name, number)

    async def bounds(self, tp: Any) -> tuple[int, int]:
        start = (await self.consumer.beginning_offsets([tp]))[tp]
        end = (await self.consumer.end_offsets([tp]))[tp]
        return int(start), int(end)

    async def redrive_mark(self, tp: Any) -> int:
        committed = await self.consumer.committed(tp)
        return int(committed) if committed is not None else 0

    async def records(self, tp: Any, end: int) -> AsyncGenerator[Any, None]:
        """The records of `tp` from the current position up to (not including) `end`."""
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while await self.consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise DeadLetterError(f"reading {self.topic.name} timed out")
            batches = await self.consumer.getmany(tp, timeout_ms=500)
            for record in batches.get(tp, []):
                if record.offset >= end:
                    return
                yield record

    async def _partition_numbers(self) -> list[int]:
        async with kafka_admin(self.topic.bootstrap, self.attempts) as admin:
            # All topics, not just this one: asking for a missing topic by name would have a
            # broker with auto.create.topics.enable create it.
            described = await admin.describe_topics()
        found = next((t for t in described if t["topic"] == self.topic.name), None)
        if not found or found["error_code"] or not found["partitions"]:
            raise DeadLetterError(
                f"topic {self.topic.name} does not exist (`qbsync topics ensure` creates it)"
            )
        return sorted(p["partition"] for p in found["partitions"])
