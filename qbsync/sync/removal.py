"""Delinking when one side goes away (archived account, inactive or merged customer)."""

from __future__ import annotations

from collections.abc import Sequence

from qbsync.domain.accounts import ARCHIVED_IN_LISCIO, delink_reason
from qbsync.sync.linking import remove_link
from qbsync.sync.unit_of_work import UnitOfWork


async def delink_account(
    uow: UnitOfWork, firm_id: str, account_id: str, reason: str, *, actor: str = "sync"
) -> bool:
    async with uow.for_accounts(firm_id, [account_id]) as tx:
        return await remove_link(tx, firm_id, account_id, reason=reason, actor=actor) is not None


async def delink_archived(uow: UnitOfWork, firm_id: str, account_id: str) -> bool:
    """An account archived in Liscio loses its link; its customer stays in QuickBooks."""
    return await delink_account(uow, firm_id, account_id, ARCHIVED_IN_LISCIO)


async def delink_gone_customers(uow: UnitOfWork, realm_id: str, customer_ids: Sequence[str]) -> int:
    """Remove the links of these customers that are, as stored now, inactive or deleted."""
    removed = 0
    for link in await uow.direct.links.of_customers(realm_id, customer_ids):
        customer = await uow.direct.customers.get(realm_id, link.customer_id)
        if customer is None:
            continue
        reason = delink_reason(False, customer.active, customer.deleted)
        if reason and await delink_account(uow, link.firm_id, link.account_id, reason):
            removed += 1
    return removed
