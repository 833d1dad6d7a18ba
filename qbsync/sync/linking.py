"""Making and removing links. Each change is a row in the audit log and a `sync.links`
event (through the outbox, in the same transaction), so Liscio and auditors see every one."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from qbsync import metrics
from qbsync.db.links import AuditEntry, Link
from qbsync.kafka.topics import SYNC_LINKS
from qbsync.sync.field_sync import apply_plan, plan_for
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.unit_of_work import Repositories
from schemas import LinkEvent
from schemas.encoding import message_json

How = Literal["auto", "manual", "created"]


async def _announce(
    tx: Repositories,
    links: Sequence[Link],
    change: Literal["link.created", "link.removed"],
    reason: str,
    run_id: str | None,
    actor: str,
) -> None:
    await tx.audit.record(
        [
            AuditEntry(
                firm_id=link.firm_id,
                action=change,
                reason=reason,
                account_id=link.account_id,
                realm_id=link.realm_id,
                customer_id=link.customer_id,
                new_value=link.how,
                run_id=run_id,
                actor=actor,
            )
            for link in links
        ],
    )
    at = datetime.now(UTC)
    await tx.outbox.enqueue(
        [
            (
                SYNC_LINKS,
                f"{link.firm_id}:{link.account_id}",
                message_json(
                    LinkEvent,
                    {
                        "event_id": str(uuid.uuid4()),
                        "type": change,
                        "firm_id": link.firm_id,
                        "account_id": link.account_id,
                        "realm_id": link.realm_id,
                        "customer_id": link.customer_id,
                        "how": link.how,
                        "reason": reason,
                        "at": at,
                    },
                ).decode(),
            )
            for link in links
        ],
    )
    for how, count in Counter(link.how for link in links).items():
        metrics.LINKS_CHANGED.labels(change.removeprefix("link."), how).inc(count)


async def create_links(
    tx: Repositories,
    firm_id: str,
    realm_id: str,
    pairs: Sequence[tuple[str, str]],
    *,
    how: How,
    reason: str,
    run_id: str | None = None,
    first_synced: Sequence[bool] | None = None,
    actor: str = "sync",
) -> list[Link]:
    """Link (account_id, customer_id) pairs inside the caller's transaction, which holds
    the accounts' locks (`uow.for_accounts`). Pairs whose account or customer is already
    linked are skipped. `first_synced` (see `Links.insert`): the caller records those
    links' first sync in the same transaction. `actor`: who is audited (a person's id, or
    "sync")."""
    links = await tx.links.insert(firm_id, realm_id, pairs, how, first_synced)
    await _announce(tx, links, "link.created", reason, run_id, actor)
    return links


async def remove_link(
    tx: Repositories,
    firm_id: str,
    account_id: str,
    *,
    reason: str,
    run_id: str | None = None,
    actor: str = "sync",
) -> Link | None:
    """Delink the account (never deleting anything on either side). None if it had no link."""
    link = await tx.links.delete(firm_id, account_id)
    if link is not None:
        await _announce(tx, [link], "link.removed", reason, run_id, actor)
    return link


async def link_with_first_sync(
    tx: Repositories,
    quickbooks: CustomerGateway,
    firm_id: str,
    realm_id: str,
    account_id: str,
    customer_id: str,
    *,
    how: How,
    reason: str,
    actor: str = "sync",
    first_sync: bool = True,
) -> Link | None:
    """Link one pair and apply its first-sync merge (`plan_for`, `apply_plan`: the rules
    and effects of Sync Now's match step) in the caller's transaction, which holds the
    account's lock; the merge's writes are audited with the same actor as the link. A
    failed QuickBooks call raises, and the transaction takes the link back with it.
    `first_sync=False`: the merge is left owed (the next Sync Now applies it). None if the
    account or the customer is linked already."""
    links = await create_links(
        tx, firm_id, realm_id, [(account_id, customer_id)], how=how, reason=reason, actor=actor
    )
    if not links:
        return None
    if first_sync:
        for pair in await tx.pairs.load(firm_id, [account_id]):
            await apply_plan(tx, quickbooks, pair, plan_for(pair), reason=reason, actor=actor)
    return links[0]
