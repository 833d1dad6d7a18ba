"""Liscio accounts as their latest event described them (table `accounts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from pydantic import TypeAdapter

from qbsync.db.pool import Db
from qbsync.domain.fields import SyncedFields, to_json
from qbsync.domain.matching import Named, fold
from schemas import AccountEvent, Contact

# One call that writes the JSON (a model_dump per contact costs twice as much).
_CONTACTS_JSON = TypeAdapter(list[Contact])

# Events of one account arrive in order, but a redelivered older event must not roll the
# copy back: the newer `occurred_at` wins.
_UPSERT = """
INSERT INTO accounts AS a (firm_id, account_id, name, name_folded, status, address, phone,
                           website, archived, last_occurred_at, contacts)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::text[]::jsonb[], $7::text[], $8::text[], $9::bool[], $10::timestamptz[],
                     $11::text[]::jsonb[])
ON CONFLICT (firm_id, account_id) DO UPDATE
   SET name = EXCLUDED.name, name_folded = EXCLUDED.name_folded, status = EXCLUDED.status,
       address = EXCLUDED.address, phone = EXCLUDED.phone, website = EXCLUDED.website,
       archived = EXCLUDED.archived, last_occurred_at = EXCLUDED.last_occurred_at,
       contacts = EXCLUDED.contacts, updated_at = now()
 WHERE a.last_occurred_at <= EXCLUDED.last_occurred_at
"""


@dataclass(frozen=True)
class StoredAccount:
    firm_id: str
    account_id: str
    name: str
    status: str | None
    archived: bool
    fields: SyncedFields

    @classmethod
    def from_row(
        cls,
        row: asyncpg.Record | Mapping[str, Any],
        *,
        prefix: str = "",
        firm_id: str | None = None,
    ) -> StoredAccount:
        """`prefix`: of every column but the keys, where a row holds both sides of a pair
        (qbsync/db/pairs.py); `firm_id`: where the row has no such column."""
        return cls(
            row["firm_id"] if firm_id is None else firm_id,
            row["account_id"],
            row[prefix + "name"],
            row[prefix + "status"],
            row[prefix + "archived"],
            SyncedFields.parse(
                row[prefix + "address"], row[prefix + "phone"], row[prefix + "website"]
            ),
        )


def synced_fields_of(event: AccountEvent) -> SyncedFields:
    account = event.account
    raw_address = account.address.model_dump() if account.address else None
    return SyncedFields.parse(raw_address, account.phone, account.website)


async def store_accounts(db: Db, events: Sequence[AccountEvent]) -> None:
    """Keep each account's latest state; of several events of one account the last wins."""
    latest = {(e.firm_id, e.account.id): e for e in events}
    rows = [(e, synced_fields_of(e)) for e in latest.values()]
    if not rows:
        return
    await db.execute(
        _UPSERT,
        [e.firm_id for e, _ in rows],
        [e.account.id for e, _ in rows],
        [e.account.name for e, _ in rows],
        [fold(e.account.name) for e, _ in rows],
        [e.account.status for e, _ in rows],
        [orjson.dumps(to_json(f.address)).decode() if f.address else None for _, f in rows],
        [f.phone for _, f in rows],
        [f.website for _, f in rows],
        [e.type == "account.archived" for e, _ in rows],
        [e.occurred_at for e, _ in rows],
        [_CONTACTS_JSON.dump_json(e.account.contacts).decode() for e, _ in rows],
    )


_COLUMNS = "firm_id, account_id, name, status, archived, address, phone, website"


async def get_account(db: Db, firm_id: str, account_id: str) -> StoredAccount | None:
    if "\x00" in firm_id or "\x00" in account_id:
        return None  # PostgreSQL's text holds no NUL: such an id names nothing
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM accounts WHERE firm_id = $1 AND account_id = $2",
        firm_id,
        account_id,
    )
    return StoredAccount.from_row(row) if row else None


async def unlinked_account_names(db: Db, firm_id: str) -> list[Named]:
    """Id and name of every account of the firm that is neither archived nor linked: all
    that matching by name needs (no synced fields: 100,000 accounts stay light)."""
    rows = await db.fetch(
        """
        SELECT account_id, name FROM accounts a
         WHERE a.firm_id = $1 AND NOT a.archived
           AND NOT EXISTS (SELECT 1 FROM links l
                            WHERE l.firm_id = a.firm_id AND l.account_id = a.account_id)
        """,
        firm_id,
    )
    return [Named(r["account_id"], r["name"]) for r in rows]


async def linked_account_ids(db: Db, firm_id: str) -> list[str]:
    """Every linked account of the firm, in account order."""
    rows = await db.fetch(
        "SELECT account_id FROM links WHERE firm_id = $1 ORDER BY account_id", firm_id
    )
    return [r["account_id"] for r in rows]


async def accounts_awaiting_first_sync(db: Db, firm_id: str) -> list[str]:
    """Accounts whose link has not had its first sync yet (new, or interrupted before)."""
    rows = await db.fetch(
        "SELECT account_id FROM links WHERE firm_id = $1 AND first_synced_at IS NULL"
        " ORDER BY account_id",
        firm_id,
    )
    return [r["account_id"] for r in rows]


async def mark_for_attention(db: Db, firm_id: str, account_id: str, reason: str | None) -> None:
    """Operators see accounts that need a person (e.g. a name QuickBooks refuses)."""
    await db.execute(
        "UPDATE accounts SET attention = $3, attention_at = CASE WHEN $3::text IS NULL"
        " THEN NULL ELSE now() END WHERE firm_id = $1 AND account_id = $2",
        firm_id,
        account_id,
        reason,
    )


async def accounts_needing_attention(db: Db, firm_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT account_id, name, attention AS reason, attention_at AS since FROM accounts"
        " WHERE firm_id = $1 AND attention IS NOT NULL ORDER BY account_id",
        firm_id,
    )
    return [dict(r) for r in rows]


async def status_last_pushed(db: Db, firm_id: str, account_id: str) -> str | None:
    """The account's status when the pusher last handled one of its events."""
    status: str | None = await db.fetchval(
        "SELECT pushed_status FROM accounts WHERE firm_id = $1 AND account_id = $2",
        firm_id,
        account_id,
    )
    return status


async def record_pushed_statuses(db: Db, firm_id: str, statuses: Mapping[str, str | None]) -> None:
    """Each account's status as the pusher handled it (account id -> status), at once."""
    if not statuses:
        return
    await db.execute(
        "UPDATE accounts AS a SET pushed_status = s.status, pushed_at = now()"
        "  FROM unnest($2::text[], $3::text[]) AS s(account_id, status)"
        " WHERE a.firm_id = $1 AND a.account_id = s.account_id",
        firm_id,
        list(statuses),
        list(statuses.values()),
    )
