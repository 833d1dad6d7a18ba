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


_COLUMNS = """
       l.firm_id, l.account_id, l.realm_id, l.customer_id, l.how, l.linked_at, l.first_synced_at,
       a.name AS a_name, a.status AS a_status, a.archived AS a_archived, a.address AS a_address,
       a.phone AS a_phone, a.website AS a_website,
       c.display_name, c.active, c.deleted, c.parent_id, c.sync_token, c.address AS c_address,
       c.phone AS c_phone, c.website AS c_website
  FROM links l
  JOIN accounts a ON a.firm_id = l.firm_id AND a.account_id = l.account_id
  JOIN customers c ON c.realm_id = l.realm_id AND c.customer_id = l.customer_id
"""
_ALL_OF_FIRM = f"SELECT {_COLUMNS} WHERE l.firm_id = $1 ORDER BY l.account_id"
# The given accounts, each pair looked up by its keys: `l.account_id = ANY($2)` or a join
# with the list may be planned as a scan of every link and account of the firm for every
# chunk (as they are while freshly filled tables have no statistics yet), a cost that grows
# with the firm. A LATERAL subquery with a LIMIT cannot be merged into the outer query, so
# it runs once per account, as three primary-key lookups.
_OF_ACCOUNTS = f"""
SELECT pair.* FROM (SELECT DISTINCT unnest($2::text[]) AS account_id) AS wanted
 CROSS JOIN LATERAL (
       SELECT {_COLUMNS} WHERE l.firm_id = $1 AND l.account_id = wanted.account_id LIMIT 1
 ) AS pair
 ORDER BY pair.account_id
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
    if account_ids is None:
        rows = await db.fetch(_ALL_OF_FIRM, firm_id)
    else:
        rows = await db.fetch(_OF_ACCOUNTS, firm_id, list(account_ids))
    return [_pair(r) for r in rows]
