"""The pusher's consumer on the real broker (issue 11, defect 3): with offsets 101-105
acknowledged and 100 not, the group's committed position stays 100, also for a consumer
that has just been assigned the partition; once 100 is acknowledged it moves to 106."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from qbsync.kafka.acks import Ack, AckedInput, AcknowledgingConsumer, Record
from qbsync.kafka.admin import ensure_topics
from qbsync.kafka.topics import ACCOUNT_EVENTS
from tests.support.polling import eventually
from tests.support.stack import Stack

MESSAGES = 106
HELD = 100


@dataclass
class Handed:
    """Acknowledges every record at once except those in `hold`, which wait in `held`."""

    hold: set[int]
    offsets: list[int] = field(default_factory=list)
    held: dict[int, Ack] = field(default_factory=dict)

    async def __call__(self, record: Record, ack: Ack) -> None:
        self.offsets.append(record.offset)
        if record.offset in self.hold:
            self.held[record.offset] = ack
        else:
            await ack()


@dataclass
class Topic:
    bootstrap: str
    prefix: str
    group: str

    def consumer(self, handed: Handed) -> AcknowledgingConsumer:
        async def nothing_under_way() -> None:
            return None

        source = AckedInput(ACCOUNT_EVENTS, handed, room=lambda: 1000, finish=nothing_under_way)
        return AcknowledgingConsumer(self.bootstrap, self.prefix, self.group, source)

    async def committed(self) -> int | None:
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False
        )
        await reader.start()
        try:
            offset: int | None = await reader.committed(
                TopicPartition(self.prefix + ACCOUNT_EVENTS, 0)
            )
            return offset
        finally:
            await reader.stop()


@pytest_asyncio.fixture
async def topic(stack: Stack) -> AsyncIterator[Topic]:
    prefix = f"acks{uuid.uuid4().hex[:8]}."
    await ensure_topics(stack.kafka_bootstrap, prefix)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(MESSAGES):
            await producer.send(prefix + ACCOUNT_EVENTS, f"m{n}".encode(), b"k", partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    yield Topic(stack.kafka_bootstrap, prefix, f"{prefix}qbsync-pusher")


async def handed_out(handed: Handed, first: int) -> bool:
    return handed.offsets[-1:] == [MESSAGES - 1] and handed.offsets[0] == first


async def test_an_unacknowledged_offset_holds_the_committed_position(topic: Topic) -> None:
    handed = Handed(hold={HELD})
    consumer = topic.consumer(handed)
    await consumer.start()
    try:
        await eventually(lambda: handed_out(handed, 0), what="all records handed out")
        assert await consumer.commit_done() == {0: HELD}
        assert await consumer.commit_done() == {}  # nothing moved: nothing committed again
    finally:
        await consumer.stop()  # its last commit must not pass the held offset either
    assert await topic.committed() == HELD

    # A consumer just assigned the partition reads from 100; 101-105 done, 100 not.
    again = Handed(hold={HELD})
    consumer = topic.consumer(again)
    await consumer.start()
    try:
        await eventually(lambda: handed_out(again, HELD), what="records read again from 100")
        assert again.offsets == list(range(HELD, MESSAGES))
        await consumer.commit_done()
        assert await topic.committed() == HELD
        await again.held[HELD]()
        assert await consumer.commit_done() == {0: MESSAGES}
    finally:
        await consumer.stop()
    assert await topic.committed() == MESSAGES
