"""The matcher's batch consumer (qbsync/kafka/batches.py) on the real broker: bad input goes
to the dead-letter topic and the partition moves on, a message its handler keeps failing on
is isolated, offsets are committed once handled, redelivery (a rewind) changes nothing,
and the service stops on SIGTERM with exit code 0 and its group's lag at zero."""

from __future__ import annotations

import base64
import json
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from qbsync.db.accounts import store_accounts
from qbsync.db.pool import Pool
from qbsync.kafka.admin import connect_admin, ensure_topics
from qbsync.kafka.batches import BatchConsumer, BatchInput
from qbsync.kafka.dead_letters import DeadLetterSink
from qbsync.kafka.producer import Producer
from qbsync.kafka.rewind import rewind_group
from qbsync.kafka.topics import ACCOUNT_EVENTS, all_specs, dlq_of
from schemas import AccountEvent
from tests.conftest import unique
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess
from tests.support.stack import Stack

PARTITIONS = 8  # liscio.account-events in the catalogue


@dataclass
class Topics:
    prefix: str
    bootstrap: str
    producer: Producer
    group: str = field(default_factory=lambda: unique("batch-group"))

    def consumer(self, source: BatchInput[Any]) -> BatchConsumer:
        return BatchConsumer(
            self.bootstrap,
            self.prefix,
            self.prefix + self.group,
            [source],
            DeadLetterSink(self.producer, "test"),
            max_records=50,  # several polls and batches for a few hundred messages
        )

    async def committed(self) -> int:
        """Messages of liscio.account-events the group has committed, over all partitions."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.prefix + self.group,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            total = 0
            for partition in range(PARTITIONS):
                offset = await consumer.committed(
                    TopicPartition(self.prefix + ACCOUNT_EVENTS, partition)
                )
                total += offset or 0
            return total
        finally:
            await consumer.stop()


@pytest_asyncio.fixture
async def topics(stack: Stack) -> AsyncIterator[Topics]:
    prefix = f"batch{uuid.uuid4().hex[:8]}."
    await ensure_topics(stack.kafka_bootstrap, prefix)
    producer = Producer(stack.kafka_bootstrap, prefix)
    await producer.start()
    yield Topics(prefix, stack.kafka_bootstrap, producer)
    await producer.stop()
    admin = await connect_admin(stack.kafka_bootstrap)
    try:
        await admin.delete_topics([prefix + spec.name for spec in all_specs()])
    finally:
        await admin.close()


def event(firm: str, account: str, name: str | None = None) -> dict[str, Any]:
    return {
        "event_id": unique("evt"),
        "type": "account.created",
        "occurred_at": "2026-11-25T16:00:00Z",
        "firm_id": firm,
        "account": {"id": account, "name": name or f"Account {account}", "status": "Client"},
    }


async def dead_letters(topics: Topics, count: int) -> list[dict[str, Any]]:
    found = await read_topic(
        topics.bootstrap, topics.prefix + dlq_of(ACCOUNT_EVENTS), expect=count, timeout=60
    )
    return [value for _, value in found]


async def test_bad_input_is_dead_lettered_and_every_partition_moves_on(topics: Topics) -> None:
    firm = unique("firm")
    handled: list[AccountEvent] = []

    async def handle(events: list[AccountEvent]) -> None:
        for one in events:
            if one.account.name == "poison":
                raise ValueError("refused by the handler")
        handled.extend(events)

    # 200 good events, one value that is not JSON, one the handler refuses; same keys as
    # good ones so they sit in the middle of busy partitions.
    keys = [f"{firm}:a{n}" for n in range(200)]
    for n, key in enumerate(keys):
        await topics.producer.send_soon(ACCOUNT_EVENTS, key, event(firm, f"a{n}"))
        if n == 50:
            await topics.producer.send_soon(ACCOUNT_EVENTS, keys[7], b"{not json")
        if n == 120:
            await topics.producer.send_soon(
                ACCOUNT_EVENTS, keys[9], event(firm, "a9", name="poison")
            )
    await topics.producer.flush()

    consumer = topics.consumer(BatchInput(ACCOUNT_EVENTS, AccountEvent, handle))
    await consumer.start()
    try:
        await eventually(
            lambda: _true(topics.committed(), 202), timeout=60, what="every offset committed"
        )
    finally:
        await consumer.stop()

    assert sorted(e.account.id for e in handled) == sorted(f"a{n}" for n in range(200))
    letters = await dead_letters(topics, 2)
    reasons = sorted(letter["error"].split(":")[0] for letter in letters)
    assert reasons == ["ValueError", "schema violation"]
    values = {base64.b64decode(letter["value_b64"]) for letter in letters}
    assert b"{not json" in values
    assert all(letter["topic"] == ACCOUNT_EVENTS for letter in letters)


async def test_redelivery_after_a_rewind_changes_nothing(topics: Topics, pool: Pool) -> None:
    firm = unique("firm")
    count = 150
    for n in range(count):
        await topics.producer.send_soon(ACCOUNT_EVENTS, f"{firm}:a{n}", event(firm, f"a{n}"))
    await topics.producer.flush()

    async def store(events: list[AccountEvent]) -> None:
        await store_accounts(pool, events)

    async def stored() -> list[tuple[Any, ...]]:
        rows = await pool.fetch(
            "SELECT account_id, name, last_occurred_at, updated_at FROM accounts"
            " WHERE firm_id = $1 ORDER BY account_id",
            firm,
        )
        return [tuple(r) for r in rows]

    async def consume_everything() -> None:
        consumer = topics.consumer(BatchInput(ACCOUNT_EVENTS, AccountEvent, store))
        await consumer.start()
        try:
            await eventually(
                lambda: _true(topics.committed(), count), timeout=60, what="all committed"
            )
        finally:
            await consumer.stop()

    await consume_everything()
    first = await stored()
    assert len(first) == count

    # The group is rewound (what `qbsync rewind` does) and reads everything again.
    assert await rewind_group(topics.bootstrap, topics.prefix, topics.group, ACCOUNT_EVENTS) == 8
    assert await topics.committed() == 0
    await consume_everything()
    again = await stored()
    # Same rows; the same events do not even touch them (the newer-or-equal check lets them
    # through, so only the state must be equal, not updated_at).
    assert [row[:3] for row in again] == [row[:3] for row in first]


async def test_the_matcher_stops_on_sigterm_with_exit_0_and_everything_committed(
    topics: Topics, spawn: Any
) -> None:
    env = {"QBSYNC_TOPIC_PREFIX": topics.prefix}
    matcher: ServiceProcess = spawn("services.matcher", **env)
    await eventually(lambda: _ready(matcher), timeout=60, interval=0.2, what="matcher ready")
    firm = unique("firm")
    for n in range(300):
        await topics.producer.send_soon(ACCOUNT_EVENTS, f"{firm}:a{n}", event(firm, f"a{n}"))
    await topics.producer.flush()
    topics.group = "qbsync-matcher"  # the service's group, as `qbsync lag` names it
    await eventually(
        lambda: _true(topics.committed(), 300), timeout=60, what="matcher committed all"
    )
    assert matcher.stop(signal.SIGTERM) == 0, matcher.output()[-3000:]
    lines = [json.loads(line) for line in matcher.output().splitlines() if line.startswith("{")]
    assert not [line for line in lines if line.get("level") in ("error", "critical")]


async def _true(probe: Any, expected: int) -> bool:
    return bool(await probe == expected)


async def _ready(process: ServiceProcess) -> bool:
    assert process.process.poll() is None, process.output()[-3000:]
    return '"ready"' in process.output()
