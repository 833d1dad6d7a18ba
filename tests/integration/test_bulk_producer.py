"""The import's librdkafka batch (`Producer.batch()`) against the real broker: a key lands
on the partition the aiokafka producer (webhooks, CDC) sends it to, so per-customer order
holds whichever path wrote; a message the broker refuses fails the batch's confirm."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import NewTopic

from qbsync.kafka.admin import connect_admin
from qbsync.kafka.bulk import DeliveryFailed
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import QBO_CUSTOMERS
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def partitions_by_key(
    bootstrap: str, topic: str, keys: set[str], expect: int, timeout: float = 30.0
) -> dict[str, dict[str, set[int]]]:
    """{key: {value: partitions}} of the messages with one of `keys`, once `expect` arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in keys:
                        found[key][(record.value or b"").decode()].add(record.partition)
                        seen += 1
    finally:
        await consumer.stop()
    return found


async def test_a_key_lands_on_the_same_partition_through_either_producer(
    stack: Stack, topics: str, producer: Producer
) -> None:
    realm = uuid.uuid4().hex[:12]
    keys = [f"{realm}:{n}" for n in range(1, 301)]
    deliveries = [await producer.send_soon(QBO_CUSTOMERS, key, b'"aiokafka"') for key in keys]
    await asyncio.gather(*deliveries)
    batch = producer.batch(QBO_CUSTOMERS)
    for key in keys:
        batch.send(key, b'"bulk"')
    await batch.confirm()

    found = await partitions_by_key(
        stack.kafka_bootstrap, topics + QBO_CUSTOMERS, set(keys), expect=2 * len(keys)
    )

    assert set(found) == set(keys)
    for key in keys:
        assert found[key]['"aiokafka"'] == found[key]['"bulk"'], key
        assert len(found[key]['"bulk"']) == 1, key
    # Not all on one partition: the test would prove nothing about the partitioner.
    assert len({next(iter(by_value['"bulk"'])) for by_value in found.values()}) > 1


async def test_a_message_the_broker_refuses_fails_the_confirm(
    stack: Stack, topics: str, producer: Producer
) -> None:
    name = f"bulk-refuses-{uuid.uuid4().hex[:8]}"
    admin = await connect_admin(stack.kafka_bootstrap, attempts=3)
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name=topics + name,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": "2000"},
                )
            ]
        )
        batch = producer.batch(name)
        batch.send("small", b"{}")
        batch.send("too-large", b'"' + b"x" * 10_000 + b'"')
        # The broker refuses the record batch holding it (with the small one, sent together).
        with pytest.raises(DeliveryFailed, match="MSG_SIZE_TOO_LARGE"):
            await batch.confirm()
        # A later batch is judged on its own messages only.
        later = producer.batch(name)
        later.send("small", b"{}")
        await later.confirm()
    finally:
        await admin.delete_topics([topics + name])
        await admin.close()
