"""Redelivery of a message id has no further effect (table `processed_messages`)."""

from __future__ import annotations

from collections.abc import Sequence

from qbsync.db.pool import Db


async def processed_among(db: Db, consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Which of `message_ids` the consumer has processed (one round trip for many)."""
    rows = await db.fetch(
        "SELECT message_id FROM processed_messages"
        " WHERE consumer = $1 AND message_id = ANY($2::text[])",
        consumer,
        list(message_ids),
    )
    return {row["message_id"] for row in rows}


async def mark_processed(db: Db, consumer: str, message_ids: Sequence[str]) -> None:
    await db.execute(
        "INSERT INTO processed_messages (consumer, message_id)"
        " SELECT $1, m FROM unnest($2::text[]) AS m ON CONFLICT DO NOTHING",
        consumer,
        list(message_ids),
    )
