"""Links between a Liscio account and a QuickBooks customer (table `links`), the
ambiguities left for a person, and the audit log of both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from qbsync.db.pool import Db, EncodedJson
from qbsync.domain.matching import Ambiguity


@dataclass(frozen=True)
class Link:
    firm_id: str
    account_id: str
    realm_id: str
    customer_id: str
    how: str
    linked_at: datetime
    first_synced_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record | Mapping[str, Any]) -> Link:
        # Spelled out: a link is read for every pair synced, often a thousand at a time.
        return cls(
            row["firm_id"],
            row["account_id"],
            row["realm_id"],
            row["customer_id"],
            row["how"],
            row["linked_at"],
            row["first_synced_at"],
        )


_COLUMNS = "firm_id, account_id, realm_id, customer_id, how, linked_at, first_synced_at"


async def insert_links(
    db: Db,
    firm_id: str,
    realm_id: str,
    pairs: Sequence[tuple[str, str]],
    how: str,
    first_synced: Sequence[bool] | None = None,
) -> list[Link]:
    """Insert (account_id, customer_id) links; a pair whose account or customer is linked
    already is skipped (the constraints decide, not a prior read). Returns those inserted.
    `first_synced`, one flag per pair: the link's first sync is recorded in this same
    transaction (`first_synced_at` is set now); otherwise it is owed."""
    rows = await db.fetch(
        f"""
        INSERT INTO links (firm_id, account_id, realm_id, customer_id, how, first_synced_at)
        SELECT $1, a, $2, c, $3, CASE WHEN s THEN now() END
          FROM unnest($4::text[], $5::text[], $6::bool[]) AS p(a, c, s)
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
        """,
        firm_id,
        realm_id,
        how,
        [a for a, _ in pairs],
        [c for _, c in pairs],
        list(first_synced) if first_synced is not None else [False] * len(pairs),
    )
    return [Link.from_row(r) for r in rows]


async def delete_link(db: Db, firm_id: str, account_id: str) -> Link | None:
    row = await db.fetchrow(
        f"DELETE FROM links WHERE firm_id = $1 AND account_id = $2 RETURNING {_COLUMNS}",
        firm_id,
        account_id,
    )
    return Link.from_row(row) if row else None


async def link_of_account(db: Db, firm_id: str, account_id: str) -> Link | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM links WHERE firm_id = $1 AND account_id = $2", firm_id, account_id
    )
    return Link.from_row(row) if row else None


async def links_of_customers(db: Db, realm_id: str, customer_ids: Sequence[str]) -> list[Link]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM links WHERE realm_id = $1 AND customer_id = ANY($2::text[])",
        realm_id,
        list(customer_ids),
    )
    return [Link.from_row(r) for r in rows]


async def links_of_firm(db: Db, firm_id: str) -> list[Link]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM links WHERE firm_id = $1 ORDER BY account_id", firm_id
    )
    return [Link.from_row(r) for r in rows]


async def mark_first_synced(db: Db, firm_id: str, account_ids: Sequence[str]) -> None:
    await db.execute(_MARK_FIRST_SYNCED, firm_id, list(account_ids))


# Each link found by its key (a LATERAL subquery with a LIMIT runs once per account), then
# updated by its row id: `account_id = ANY($2)` is planned as a scan of every link of the
# firm, a cost per chunk that grows with the firm (≈3 ms a chunk at 15,000 links).
_MARK_FIRST_SYNCED = """
UPDATE links SET first_synced_at = now()
  FROM (SELECT DISTINCT unnest($2::text[]) AS account_id) AS wanted
 CROSS JOIN LATERAL (
       SELECT l.ctid AS row_id FROM links l
        WHERE l.firm_id = $1 AND l.account_id = wanted.account_id LIMIT 1
 ) AS found
 WHERE links.ctid = found.row_id AND links.first_synced_at IS NULL
"""


async def replace_ambiguities(
    db: Db, firm_id: str, found: Sequence[Ambiguity], run_id: str | None
) -> None:
    await db.execute("DELETE FROM ambiguities WHERE firm_id = $1", firm_id)
    await db.executemany(
        "INSERT INTO ambiguities (firm_id, name_folded, account_ids, customer_ids, run_id)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (firm_id, a.folded_name, list(a.account_ids), list(a.customer_ids), run_id)
            for a in found
        ],
    )


async def ambiguities_of_firm(db: Db, firm_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT name_folded, account_ids, customer_ids, detected_at FROM ambiguities"
        " WHERE firm_id = $1 ORDER BY name_folded",
        firm_id,
    )
    return [dict(r) for r in rows]


@dataclass(slots=True)  # not frozen: a frozen dataclass is built at twice the cost
class AuditEntry:
    firm_id: str
    action: str
    reason: str
    account_id: str | None = None
    realm_id: str | None = None
    customer_id: str | None = None
    side: str | None = None
    field: str | None = None
    old_value: Any = None
    new_value: Any = None
    run_id: str | None = None
    actor: str = "sync"  # the API user's id for what a person did through the API


@dataclass(frozen=True)
class AuditRecord:
    """An audit log entry as it is read back."""

    id: int
    at: datetime
    action: str
    account_id: str | None
    customer_id: str | None
    side: str | None
    field: str | None
    old: Any
    new: Any
    reason: str
    actor: str


_AUDIT_COLUMNS = (
    "firm_id",
    "account_id",
    "realm_id",
    "customer_id",
    "action",
    "side",
    "field",
    "old_value",
    "new_value",
    "reason",
    "run_id",
    "actor",
)


async def record_audit(db: Db, entries: Sequence[AuditEntry]) -> None:
    """Append the entries to the audit log inside the caller's transaction (one COPY)."""
    if not entries:
        return
    await db.copy_records_to_table(
        "audit_log",
        columns=_AUDIT_COLUMNS,
        records=[
            (
                e.firm_id,
                e.account_id,
                e.realm_id,
                e.customer_id,
                e.action,
                e.side,
                e.field,
                EncodedJson(orjson.dumps(e.old_value).decode()),  # None: JSON null
                EncodedJson(orjson.dumps(e.new_value).decode()),
                e.reason,
                e.run_id,
                e.actor,
            )
            for e in entries
        ],
    )


async def audit_page(
    db: Db, firm_id: str, account_id: str | None, before_id: int | None, limit: int
) -> list[AuditRecord]:
    rows = await db.fetch(
        """
        SELECT id, at, action, account_id, customer_id, side, field, old_value, new_value,
               reason, actor
          FROM audit_log
         WHERE firm_id = $1 AND ($2::text IS NULL OR account_id = $2)
           AND ($3::bigint IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4
        """,
        firm_id,
        account_id,
        before_id,
        limit,
    )
    return [
        AuditRecord(
            r["id"],
            r["at"],
            r["action"],
            r["account_id"],
            r["customer_id"],
            r["side"],
            r["field"],
            r["old_value"],
            r["new_value"],
            r["reason"],
            r["actor"],
        )
        for r in rows
    ]


async def account_ever_linked(db: Db, firm_id: str, account_id: str) -> bool:
    found: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM audit_log WHERE firm_id = $1 AND account_id = $2"
        " AND action = 'link.created')",
        firm_id,
        account_id,
    )
    return found
