"""One JSON producer per process (and, for batches of many messages, a librdkafka one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from qbsync.kafka.bulk import BulkBatch, BulkProducer
from qbsync.metrics import MESSAGES_PRODUCED
from qbsync.retry import with_backoff


def _count_delivery(topic: str, delivery: asyncio.Future[Any], messages: int = 1) -> None:
    """Counts queued messages once the broker acknowledged them (not when it failed)."""
    if not delivery.cancelled() and delivery.exception() is None:
        MESSAGES_PRODUCED.labels(topic).inc(messages)


def encode(value: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return json.dumps(value, separators=(",", ":"), default=str).encode()


class Producer:
    """Sends JSON values with UTF-8 keys to prefixed topic names; idempotent, acks=all."""

    def __init__(self, bootstrap: str, prefix: str = "") -> None:
        self.prefix = prefix
        self._bootstrap = bootstrap
        self._bulk: BulkProducer | None = None
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
        )

    async def start(self, attempts: int = 10) -> None:
        async def attempt() -> None:
            await self._producer.start()

        await with_backoff("Kafka", attempt, attempts)

    async def stop(self) -> None:
        if self._bulk is not None:
            await self._bulk.close()
        await self._producer.stop()

    def batch(self, topic: str) -> BulkBatch:
        """A batch of many messages to `topic`, confirmed as a whole (an import: see
        kafka/bulk.py).
        Its producer is made on first use, so processes that never import have none."""
        if self._bulk is None:
            self._bulk = BulkProducer(self._bootstrap, self.prefix)
        return self._bulk.batch(topic)

    async def send(self, topic: str, key: str, value: BaseModel | dict[str, Any] | bytes) -> None:
        """Send and wait for the broker's acknowledgement."""
        data = value if isinstance(value, bytes) else encode(value)
        await self._producer.send_and_wait(self.prefix + topic, data, key=key.encode())
        MESSAGES_PRODUCED.labels(topic).inc()

    async def send_soon(
        self, topic: str, key: str, value: BaseModel | dict[str, Any] | bytes
    ) -> Any:
        """Queue a send; returns a future that resolves on acknowledgement (for batches)."""
        data = value if isinstance(value, bytes) else encode(value)
        delivery = await self._producer.send(self.prefix + topic, data, key=key.encode())
        delivery.add_done_callback(lambda done: _count_delivery(topic, done))
        return delivery

    async def send_batch(
        self, topic: str, messages: Sequence[tuple[str, bytes]]
    ) -> list[asyncio.Future[Any]]:
        """Queue many pre-encoded (key, value) messages of one topic as whole record
        batches, one per partition (more when one fills up), instead of one `send` each,
        which costs far more per message. Each key goes to the partition `send` would pick
        (the same partitioner), in the given order. Returns futures that resolve once the
        broker acknowledged their batch."""
        name = self.prefix + topic
        # As `send` lists them for its partitioner (which, given a key, uses only these).
        partitions = list(await self._producer.partitions_for(name))
        choose = self._producer._partitioner
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in messages:
            encoded = key.encode()
            partition = choose(encoded, partitions, partitions)
            by_partition.setdefault(partition, []).append((encoded, value))
        deliveries = []
        for partition, records in by_partition.items():
            batch, count = self._producer.create_batch(), 0
            for key_bytes, value in records:
                # None: the batch is full (its first message always fits).
                while batch.append(key=key_bytes, value=value, timestamp=None) is None:
                    deliveries.append(await self._send_batch(batch, name, partition, count))
                    batch, count = self._producer.create_batch(), 0
                count += 1
            deliveries.append(await self._send_batch(batch, name, partition, count))
        return deliveries

    async def _send_batch(
        self, batch: Any, name: str, partition: int, count: int
    ) -> asyncio.Future[Any]:
        batch.close()  # nothing else joins it: its messages are exactly the ones counted
        delivery: asyncio.Future[Any] = await self._producer.send_batch(
            batch, name, partition=partition
        )
        topic = name.removeprefix(self.prefix)
        delivery.add_done_callback(lambda done: _count_delivery(topic, done, count))
        return delivery

    async def flush(self) -> None:
        await self._producer.flush()
