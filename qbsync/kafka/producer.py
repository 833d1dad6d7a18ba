"""One JSON producer per process (and, for batches of many messages, a librdkafka one)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from qbsync import tracing
from qbsync.kafka.bulk import BulkBatch, BulkProducer
from qbsync.metrics import MESSAGES_PRODUCED
from qbsync.retry import with_backoff


def _count_delivery(topic: str, delivery: asyncio.Future[Any]) -> None:
    """Counts queued messages once the broker acknowledged them (not when it failed)."""
    if not delivery.cancelled() and delivery.exception() is None:
        MESSAGES_PRODUCED.labels(topic).inc()


def encode(value: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return json.dumps(value, separators=(",", ":"), default=str).encode()


class Producer:
    """Sends JSON values with UTF-8 keys to prefixed topic names; acks=all.

    Not idempotent: after a broker restart aiokafka's idempotent producer can be left with
    sequence numbers the broker refuses for ever (OutOfOrderSequenceNumber on every send,
    aio-libs/aiokafka#1017; `make chaos` met it on the first run: the importer and Liscio's
    stand-in stopped producing). Order per partition holds without it (aiokafka keeps one
    batch per partition in flight), and a batch written twice after a lost answer is a
    duplicate message every consumer here already tolerates (event ids, upserts).

    A message sent inside a span carries its context in a `traceparent` header."""

    def __init__(self, bootstrap: str, prefix: str = "") -> None:
        self.prefix = prefix
        self._bootstrap = bootstrap
        self._bulk: BulkProducer | None = None
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=False,
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
        """A batch of many messages to `topic`, confirmed as a whole (an import, the outbox
        relay: see kafka/bulk.py).
        Its producer is made on first use, so processes that never import have none."""
        if self._bulk is None:
            self._bulk = BulkProducer(self._bootstrap, self.prefix)
        return self._bulk.batch(topic)

    async def send(self, topic: str, key: str, value: BaseModel | dict[str, Any] | bytes) -> None:
        """Send and wait for the broker's acknowledgement."""
        data = value if isinstance(value, bytes) else encode(value)
        await self._producer.send_and_wait(
            self.prefix + topic, data, key=key.encode(), headers=tracing.kafka_headers()
        )
        MESSAGES_PRODUCED.labels(topic).inc()

    async def send_soon(
        self, topic: str, key: str, value: BaseModel | dict[str, Any] | bytes
    ) -> Any:
        """Queue a send; returns a future that resolves on acknowledgement (for batches)."""
        data = value if isinstance(value, bytes) else encode(value)
        delivery = await self._producer.send(
            self.prefix + topic, data, key=key.encode(), headers=tracing.kafka_headers()
        )
        delivery.add_done_callback(lambda done: _count_delivery(topic, done))
        return delivery

    async def flush(self) -> None:
        await self._producer.flush()
