"""Liscio accounts as their latest event described them (table `accounts`)."""

from __future__ import annotations

import asyncpg

from qbsync.domain.fields import SyncedFields, to_json
from qbsync.domain.matching import fold
from schemas import AccountEvent


async def store_account(db: asyncpg.Connection | asyncpg.Pool, event: AccountEvent) -> bool:
    """Keep the account's latest state. Events of one account arrive in order, but a
    redelivered older event must not roll the copy back: the newer `occurred_at` wins.
    Returns whether the stored copy changed."""
    account = event.account
    raw_address = account.address.model_dump() if account.address else None
    synced = SyncedFields.parse(raw_address, account.phone, account.website)
    status = await db.execute(
        """
        INSERT INTO accounts AS a (firm_id, account_id, name, name_folded, status, address,
                                   phone, website, archived, last_occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (firm_id, account_id) DO UPDATE
           SET name = EXCLUDED.name, name_folded = EXCLUDED.name_folded,
               status = EXCLUDED.status, address = EXCLUDED.address, phone = EXCLUDED.phone,
               website = EXCLUDED.website, archived = EXCLUDED.archived,
               last_occurred_at = EXCLUDED.last_occurred_at, updated_at = now()
         WHERE a.last_occurred_at <= EXCLUDED.last_occurred_at
        """,
        event.firm_id,
        account.id,
        account.name,
        fold(account.name),
        account.status,
        to_json(synced.address),
        synced.phone,
        synced.website,
        event.type == "account.archived",
        event.occurred_at,
    )
    return status != "INSERT 0 0"
