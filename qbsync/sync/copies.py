"""Keeping the matcher's copies of both sides (what Sync Now matches and syncs against),
and removing the links that a change on one side ends."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from qbsync.sync.removal import delink_archived, delink_gone_customers
from qbsync.sync.unit_of_work import UnitOfWork
from schemas import AccountEvent, CustomerRecord


async def keep_accounts(uow: UnitOfWork, events: Sequence[AccountEvent]) -> None:
    await uow.direct.accounts.store(events)
    for event in events:
        if event.type == "account.archived":
            await delink_archived(uow, event.firm_id, event.account.id)


async def keep_customers(uow: UnitOfWork, records: Sequence[CustomerRecord]) -> None:
    await uow.direct.customers.store(records)
    gone: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.deleted or not record.active:
            gone[record.realm_id].append(record.customer_id)
    for realm_id, customer_ids in gone.items():
        await delink_gone_customers(uow, realm_id, customer_ids)
