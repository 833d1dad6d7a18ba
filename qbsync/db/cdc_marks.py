"""Where each realm's change polling (CDC) carries on from (table `cdc_marks`)."""

from __future__ import annotations

from datetime import datetime

from qbsync.db.pool import Db


async def claim_realm_poll(db: Db, realm_id: str) -> bool:
    """Whether the caller's transaction may poll the realm: only one process polls a
    realm at a time (an advisory lock held until the transaction ends)."""
    claimed: bool = await db.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('cdc:' || $1, 0))", realm_id
    )
    return claimed


async def get_cdc_mark(db: Db, realm_id: str) -> datetime | None:
    mark: datetime | None = await db.fetchval(
        "SELECT changed_since FROM cdc_marks WHERE realm_id = $1", realm_id
    )
    return mark


async def set_cdc_mark(db: Db, realm_id: str, changed_since: datetime) -> None:
    await db.execute(
        "INSERT INTO cdc_marks (realm_id, changed_since) VALUES ($1, $2)"
        " ON CONFLICT (realm_id) DO UPDATE SET changed_since = $2, updated_at = now()",
        realm_id,
        changed_since,
    )
