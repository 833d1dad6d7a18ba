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
from qbsync.sync.encoded import link_event_json
from qbsync.sync.unit_of_work import Repositories

How = Literal["auto", "manual", "created"]


async def _announce(
    tx: Repositories,
    links: Sequence[Link],
    change: Literal["link.created", "link.removed"],
    reason: str,
    run_id: str | None,
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
                link_event_json(link, str(uuid.uuid4()), change, reason, at),
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
) -> list[Link]:
    """Link (account_id, customer_id) pairs inside the caller's transaction, which holds
    the accounts' locks (`uow.for_accounts`). Pairs whose account or customer is already
    linked are skipped. `first_synced` (see `Links.insert`): the caller records those
    links' first sync in the same transaction."""
    links = await tx.links.insert(firm_id, realm_id, pairs, how, first_synced)
    await _announce(tx, links, "link.created", reason, run_id)
    return links


async def remove_link(
    tx: Repositories,
    firm_id: str,
    account_id: str,
    *,
    reason: str,
    run_id: str | None = None,
) -> Link | None:
    """Delink the account (never deleting anything on either side). None if it had no link."""
    link = await tx.links.delete(firm_id, account_id)
    if link is not None:
        await _announce(tx, [link], "link.removed", reason, run_id)
    return link
