"""A linked pair with both sides' stored state, loaded in one query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from qbsync.db.accounts import StoredAccount
from qbsync.db.customers import StoredCustomer
from qbsync.db.links import Link
from qbsync.db.pool import Db


@dataclass(frozen=True)
class LinkedPair:
    link: Link
    account: StoredAccount
    customer: StoredCustomer


_QUERY = """
SELECT l.firm_id, l.account_id, l.realm_id, l.customer_id, l.how, l.linked_at, l.first_synced_at,
       a.name AS a_name, a.status AS a_status, a.archived AS a_archived, a.address AS a_address,
       a.phone AS a_phone, a.website AS a_website,
       c.display_name, c.active, c.deleted, c.parent_id, c.sync_token, c.address AS c_address,
       c.phone AS c_phone, c.website AS c_website
  FROM links l
  JOIN accounts a ON a.firm_id = l.firm_id AND a.account_id = l.account_id
  JOIN customers c ON c.realm_id = l.realm_id AND c.customer_id = l.customer_id
 WHERE l.firm_id = $1 AND ($2::text[] IS NULL OR l.account_id = ANY($2::text[]))
 ORDER BY l.account_id
"""


def _pair(row: asyncpg.Record) -> LinkedPair:
    link = Link.from_row(row)
    account = StoredAccount.from_row(
        {
            "firm_id": row["firm_id"],
            "account_id": row["account_id"],
            "name": row["a_name"],
            "status": row["a_status"],
            "archived": row["a_archived"],
            "address": row["a_address"],
            "phone": row["a_phone"],
            "website": row["a_website"],
        }
    )
    customer = StoredCustomer.from_row(
        {
            "realm_id": row["realm_id"],
            "customer_id": row["customer_id"],
            "display_name": row["display_name"],
            "active": row["active"],
            "deleted": row["deleted"],
            "parent_id": row["parent_id"],
            "sync_token": row["sync_token"],
            "address": row["c_address"],
            "phone": row["c_phone"],
            "website": row["c_website"],
        }
    )
    return LinkedPair(link, account, customer)


async def load_pairs(
    db: Db, firm_id: str, account_ids: Sequence[str] | None = None
) -> list[LinkedPair]:
    """The firm's linked pairs (all, or those of the given accounts)."""
    rows = await db.fetch(_QUERY, firm_id, list(account_ids) if account_ids is not None else None)
    return [_pair(r) for r in rows]
