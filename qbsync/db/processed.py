"""Redelivery of a message id has no further effect (table `processed_messages`)."""

from __future__ import annotations

from collections.abc import Sequence

from qbsync.db.pool import Db


async def already_processed(db: Db, consumer: str, message_id: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT true FROM processed_messages WHERE consumer = $1 AND message_id = $2",
            consumer,
            message_id,
        )
    )


async def mark_processed(db: Db, consumer: str, message_ids: Sequence[str]) -> None:
    await db.execute(
        "INSERT INTO processed_messages (consumer, message_id)"
        " SELECT $1, m FROM unnest($2::text[]) AS m ON CONFLICT DO NOTHING",
        consumer,
        list(message_ids),
    )
