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
       c.display_name AS c_display_name, c.active AS c_active, c.deleted AS c_deleted,
       c.parent_id AS c_parent_id, c.sync_token AS c_sync_token, c.address AS c_address,
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


# Both sides of pairs about to be linked, each looked up by its keys (as above).
_SIDES = """
SELECT a.*, c.* FROM unnest($2::text[], $4::text[]) AS wanted(account_id, customer_id)
 CROSS JOIN LATERAL (
       SELECT a.account_id, a.name AS a_name, a.status AS a_status, a.archived AS a_archived,
              a.address AS a_address, a.phone AS a_phone, a.website AS a_website
         FROM accounts a WHERE a.firm_id = $1 AND a.account_id = wanted.account_id LIMIT 1
 ) AS a
 CROSS JOIN LATERAL (
       SELECT c.customer_id, c.display_name AS c_display_name, c.active AS c_active,
              c.deleted AS c_deleted, c.parent_id AS c_parent_id, c.sync_token AS c_sync_token,
              c.address AS c_address, c.phone AS c_phone, c.website AS c_website
         FROM customers c WHERE c.realm_id = $3 AND c.customer_id = wanted.customer_id LIMIT 1
 ) AS c
"""


def _pair(row: asyncpg.Record) -> LinkedPair:
    link = Link.from_row(row)
    account, customer = _sides(link.firm_id, link.realm_id, row)
    return LinkedPair(link, account, customer)


def _sides(
    firm_id: str, realm_id: str, row: asyncpg.Record
) -> tuple[StoredAccount, StoredCustomer]:
    """A row's two sides: its columns but the keys are `a_*` and `c_*`."""
    return (
        StoredAccount.from_row(row, prefix="a_", firm_id=firm_id),
        StoredCustomer.from_row(row, prefix="c_", realm_id=realm_id),
    )


async def load_pairs(
    db: Db, firm_id: str, account_ids: Sequence[str] | None = None
) -> list[LinkedPair]:
    """The firm's linked pairs (all, or those of the given accounts)."""
    if account_ids is None:
        rows = await db.fetch(_ALL_OF_FIRM, firm_id)
    else:
        rows = await db.fetch(_OF_ACCOUNTS, firm_id, list(account_ids))
    return [_pair(r) for r in rows]


async def load_sides(
    db: Db, firm_id: str, realm_id: str, pairs: Sequence[tuple[str, str]]
) -> dict[str, tuple[StoredAccount, StoredCustomer]]:
    """Both sides' stored state of (account_id, customer_id) pairs not linked yet, by
    account; a pair missing either side is left out."""
    rows = await db.fetch(_SIDES, firm_id, [a for a, _ in pairs], realm_id, [c for _, c in pairs])
    return {row["account_id"]: _sides(firm_id, realm_id, row) for row in rows}
