"""Serialising work per account: the matcher, the pusher and CLI actions on one account
never interleave. Transaction-scoped PostgreSQL advisory locks, taken in a fixed order so
two transactions locking several accounts cannot deadlock."""

from __future__ import annotations

from collections.abc import Sequence

from qbsync.db.pool import Db


async def lock_accounts(db: Db, firm_id: str, account_ids: Sequence[str]) -> None:
    """Hold the accounts' locks until the caller's transaction ends."""
    await db.execute(
        """
        SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || a, 0))
          FROM (SELECT DISTINCT a FROM unnest($2::text[]) AS a ORDER BY a) AS sorted
        """,
        firm_id,
        list(account_ids),
    )
