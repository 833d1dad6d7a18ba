"""Which firms the project knows."""

from __future__ import annotations

from qbsync.db.pool import Db


async def firm_exists(db: Db, firm_id: str) -> bool:
    """A firm exists once Liscio's stream carried one of its accounts or it is connected."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE firm_id = $1)"
            " OR EXISTS (SELECT 1 FROM connections WHERE firm_id = $1)",
            firm_id,
        )
    )
