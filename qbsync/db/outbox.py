"""The transactional outbox: messages written in the same transaction as the change they
announce, then published by a relay. A crash between the commit and the Kafka send loses
nothing; a crash after the send and before the delete publishes again, which consumers
already tolerate (every message carries its own unique id)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg
from pydantic import BaseModel

from qbsync.db.pool import Db
from qbsync.kafka.bulk import BulkBatch
from qbsync.kafka.producer import Producer
from qbsync.retry import Backoff, pause_after_failure
from qbsync.waiting import wait_for_event

log = logging.getLogger("qbsync.outbox")

# One relay publishes at a time across all processes, so messages of one key keep
# their order even with several instances running.
_RELAY_LOCK = 0x4F5554424F58  # "OUTBOX"
MAX_RETRY_SECONDS = 10.0


async def enqueue(db: Db, messages: Sequence[tuple[str, str, BaseModel | str]]) -> None:
    """(topic, key, value) rows to publish once the caller's transaction commits (one COPY).
    Each value is stored as the JSON that will be published: a model's JSON, or JSON text
    its writer already encoded as that model's (schemas/encoding.py)."""
    if not messages:
        return
    await db.copy_records_to_table(
        "outbox",
        columns=("topic", "key", "value"),
        records=[
            (topic, key, value if isinstance(value, str) else _json(value))
            for topic, key, value in messages
        ],
    )


def _json(model: BaseModel) -> str:
    return model.model_dump_json(exclude_unset=True)


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, producer: Producer, interval: float = 0.25) -> None:
        self.pool = pool
        self.producer = producer
        self.interval = interval
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Publish soon: something was just enqueued."""
        self._wake.set()

    async def publish_once(self, limit: int = 5000) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK):
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT $1", limit
            )
            if not rows:
                return 0
            batches: dict[str, BulkBatch] = {}
            for _, topic, key, value in rows:  # in id order, so each key's order is kept
                if topic not in batches:
                    batches[topic] = self.producer.batch(topic)
                batches[topic].send(key, value.encode())
            for batch in batches.values():
                await batch.confirm()
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [row[0] for row in rows]
            )
            return len(rows)

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """Publish until `stopping` is set (or the task is cancelled). After a failure it
        waits twice as long as after the one before (up to MAX_RETRY_SECONDS): one line
        per attempt while PostgreSQL or Kafka is down, not four a second."""
        stopping = stopping or asyncio.Event()
        backoff = Backoff(first=2 * self.interval, cap=MAX_RETRY_SECONDS)
        while not stopping.is_set():
            try:
                published = await self.publish_once()
                backoff.reset()
            except Exception as exc:
                await pause_after_failure("outbox relay", exc, backoff, stopping)
                continue
            if published:
                continue
            self._wake.clear()
            await wait_for_event(self._wake, self.interval)
        await self.publish_once()
