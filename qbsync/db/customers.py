"""QuickBooks customers as last seen (table `customers`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from qbsync.db.pool import Db
from qbsync.domain.fields import SyncedFields
from qbsync.domain.matching import fold
from schemas import CustomerRecord

# A record older than the stored one (a lower SyncToken: e.g. an import page fetched
# before our own write landed) must not roll the copy back; it may still tag the run.
_NEWER = (
    "(c.sync_token IS NULL OR EXCLUDED.sync_token IS NULL"
    " OR EXCLUDED.sync_token::bigint >= c.sync_token::bigint)"
)

_UPSERT = f"""
INSERT INTO customers AS c (realm_id, customer_id, display_name, name_folded, active, deleted,
                            parent_id, sync_token, address, phone, website, last_updated,
                            seen_run_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bool[],
                     $7::text[], $8::text[], $9::text[]::jsonb[], $10::text[], $11::text[],
                     $12::timestamptz[], $13::uuid[])
ON CONFLICT (realm_id, customer_id) DO UPDATE SET
    display_name = CASE WHEN {_NEWER} AND NOT EXCLUDED.deleted
                        THEN EXCLUDED.display_name ELSE c.display_name END,
    name_folded  = CASE WHEN {_NEWER} AND NOT EXCLUDED.deleted
                        THEN EXCLUDED.name_folded ELSE c.name_folded END,
    active       = CASE WHEN {_NEWER} THEN EXCLUDED.active ELSE c.active END,
    deleted      = c.deleted OR EXCLUDED.deleted,
    parent_id    = CASE WHEN {_NEWER} AND NOT EXCLUDED.deleted
                        THEN EXCLUDED.parent_id ELSE c.parent_id END,
    sync_token   = CASE WHEN {_NEWER} THEN COALESCE(EXCLUDED.sync_token, c.sync_token)
                        ELSE c.sync_token END,
    address      = CASE WHEN {_NEWER} AND NOT EXCLUDED.deleted
                        THEN EXCLUDED.address ELSE c.address END,
    phone        = CASE WHEN {_NEWER} AND NOT EXCLUDED.deleted
                        THEN EXCLUDED.phone ELSE c.phone END,
    website      = CASE WHEN {_NEWER} AND NOT EXCLUDED.deleted
                        THEN EXCLUDED.website ELSE c.website END,
    last_updated = GREATEST(c.last_updated, EXCLUDED.last_updated),
    seen_run_id  = COALESCE(EXCLUDED.seen_run_id, c.seen_run_id),
    updated_at   = now()
"""


@dataclass(frozen=True)
class StoredCustomer:
    realm_id: str
    customer_id: str
    display_name: str
    active: bool
    deleted: bool
    parent_id: str | None
    sync_token: str | None
    fields: SyncedFields

    @classmethod
    def from_row(
        cls,
        row: asyncpg.Record | Mapping[str, Any],
        *,
        prefix: str = "",
        realm_id: str | None = None,
    ) -> StoredCustomer:
        """`prefix`: of every column but the keys, where a row holds both sides of a pair
        (qbsync/db/pairs.py); `realm_id`: where the row has no such column."""
        return cls(
            row["realm_id"] if realm_id is None else realm_id,
            row["customer_id"],
            row[prefix + "display_name"],
            row[prefix + "active"],
            row[prefix + "deleted"],
            row[prefix + "parent_id"],
            row[prefix + "sync_token"],
            SyncedFields.parse(
                row[prefix + "address"], row[prefix + "phone"], row[prefix + "website"]
            ),
        )


def upsert_rounds(records: Sequence[CustomerRecord]) -> list[list[CustomerRecord]]:
    """`records` in rounds that each hold at most one record per customer, in the order
    they came: one statement cannot upsert a row twice, and applying each record (rather
    than only the last of a customer) keeps what the upsert's rules keep across records:
    the run tag of an import followed by our own write, the newer SyncToken's fields."""
    rounds: list[list[CustomerRecord]] = []
    seen: dict[tuple[str, str], int] = {}
    for record in records:
        key = (record.realm_id, record.customer_id)
        index = seen.get(key, 0)
        seen[key] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(record)
    return rounds


async def store_customers(db: Db, records: Sequence[CustomerRecord]) -> None:
    """Upsert a batch, as if its records were stored one after another."""
    for rows in upsert_rounds(records):
        await db.execute(
            _UPSERT,
            [r.realm_id for r in rows],
            [r.customer_id for r in rows],
            [r.display_name for r in rows],
            [fold(r.display_name) for r in rows],
            [r.active and not r.deleted for r in rows],
            [r.deleted for r in rows],
            [r.parent_id for r in rows],
            [r.sync_token for r in rows],
            [r.address.model_dump_json() if r.address else None for r in rows],
            [r.phone for r in rows],
            [r.website for r in rows],
            [r.last_updated for r in rows],
            [r.run_id for r in rows],
        )


_COLUMNS = (
    "realm_id, customer_id, display_name, active, deleted, parent_id, sync_token,"
    " address, phone, website"
)


async def get_customer(db: Db, realm_id: str, customer_id: str) -> StoredCustomer | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM customers WHERE realm_id = $1 AND customer_id = $2",
        realm_id,
        customer_id,
    )
    return StoredCustomer.from_row(row) if row else None


async def count_seen_in_run(db: Db, realm_id: str, run_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM customers WHERE realm_id = $1 AND seen_run_id = $2",
        realm_id,
        run_id,
    )
    return count


@dataclass(frozen=True, slots=True)
class CustomerName:
    """What matching by name needs of a customer: its name and whether it may be linked."""

    customer_id: str
    display_name: str
    active: bool
    deleted: bool
    parent_id: str | None


async def unlinked_customer_names(db: Db, realm_id: str) -> list[CustomerName]:
    """Every customer of the realm that has no link (eligibility is the caller's rule)."""
    rows = await db.fetch(
        """
        SELECT customer_id, display_name, active, deleted, parent_id FROM customers c
         WHERE c.realm_id = $1
           AND NOT EXISTS (SELECT 1 FROM links l
                            WHERE l.realm_id = c.realm_id AND l.customer_id = c.customer_id)
        """,
        realm_id,
    )
    return [CustomerName(*r) for r in rows]
