"""Delinking when one side goes away (archived account, inactive or merged customer)."""

from __future__ import annotations

from collections.abc import Sequence

from qbsync.db.customers import get_customer
from qbsync.db.links import links_of_customers
from qbsync.db.pool import Pool
from qbsync.domain.accounts import delink_reason
from qbsync.sync.linking import remove_link
from qbsync.sync.locks import lock_accounts


async def delink_account(pool: Pool, firm_id: str, account_id: str, reason: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        await lock_accounts(conn, firm_id, [account_id])
        return await remove_link(conn, firm_id, account_id, reason=reason) is not None


async def delink_gone_customers(pool: Pool, realm_id: str, customer_ids: Sequence[str]) -> int:
    """Remove the links of these customers that are, as stored now, inactive or deleted."""
    removed = 0
    for link in await links_of_customers(pool, realm_id, customer_ids):
        customer = await get_customer(pool, realm_id, link.customer_id)
        if customer is None:
            continue
        reason = delink_reason(False, customer.active, customer.deleted)
        if reason and await delink_account(pool, link.firm_id, link.account_id, reason):
            removed += 1
    return removed
