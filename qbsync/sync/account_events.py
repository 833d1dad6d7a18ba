"""What the pusher does with Liscio's account events (issue 5, DOMAIN.md rules 5, 6, 9).

- created, non-Prospect, firm connected: look in QuickBooks for the name, link or create;
- updated, linked: the subsequent-sync rules (no call when nothing differs);
- updated, unlinked: only the stored copy changes, unless the account just left Prospect
  status (then it is created as above) or an earlier create is unfinished;
- archived: delinked; the customer stays in QuickBooks;
- firms without a usable connection: counted and skipped (Sync Now catches up later).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from qbsync import metrics
from qbsync.db.accounts import record_pushed_status, status_last_pushed, store_accounts
from qbsync.db.connections import get_connection
from qbsync.db.links import link_of_account
from qbsync.db.pending_creates import unfinished_creates
from qbsync.db.pool import Pool
from qbsync.db.processed import already_processed, mark_processed
from qbsync.domain.accounts import is_prospect, may_create_in_quickbooks
from qbsync.quickbooks.errors import NeedsReconnectError
from qbsync.sync.creating import create_or_link
from qbsync.sync.pairs import sync_account
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.removal import delink_account
from schemas import AccountEvent

log = logging.getLogger("qbsync.sync.account_events")

CONSUMER = "pusher"


def superseded(events: Sequence[AccountEvent]) -> list[tuple[AccountEvent, list[str]]]:
    """Events of one account, in order, as (event to apply, ids it makes redundant).
    Each event carries the account's whole state, so of consecutive updates only the last
    needs applying; created and archived events are always applied."""
    plan: list[tuple[AccountEvent, list[str]]] = []
    for event in events:
        if plan and event.type == "account.updated" and plan[-1][0].type == "account.updated":
            previous, skipped = plan[-1]
            plan[-1] = (event, [*skipped, previous.event_id])
        else:
            plan.append((event, []))
    return plan


async def handle_account_events(
    pool: Pool, quickbooks: CustomerGateway, events: Sequence[AccountEvent]
) -> None:
    for event, redundant in superseded(events):
        outcome = await handle_account_event(pool, quickbooks, event)
        metrics.PUSHER_EVENTS.labels(outcome).inc()
        if redundant:
            await mark_processed(pool, CONSUMER, redundant)
            metrics.PUSHER_EVENTS.labels("superseded").inc(len(redundant))


async def handle_account_event(pool: Pool, quickbooks: CustomerGateway, event: AccountEvent) -> str:
    """Apply one event; returns its outcome (a metric label)."""
    if await already_processed(pool, CONSUMER, event.event_id):
        return "duplicate"
    firm_id, account_id = event.firm_id, event.account.id
    status_before = await status_last_pushed(pool, firm_id, account_id)
    await store_accounts(pool, [event])
    outcome = await _apply(pool, quickbooks, event, status_before)
    await record_pushed_status(pool, firm_id, account_id, event.account.status)
    await mark_processed(pool, CONSUMER, [event.event_id])
    return outcome


async def _apply(
    pool: Pool, quickbooks: CustomerGateway, event: AccountEvent, status_before: str | None
) -> str:
    firm_id, account = event.firm_id, event.account
    if event.type == "account.archived":
        removed = await delink_account(pool, firm_id, account.id, "account archived in Liscio")
        return "delinked" if removed else "archived"
    connection = await get_connection(pool, firm_id)
    if connection is None:
        return "skipped_not_connected"
    if connection.status != "connected":
        return "skipped_needs_reconnect"
    try:
        if await link_of_account(pool, firm_id, account.id) is not None:
            counts = await sync_account(
                pool, quickbooks, firm_id, account.id, reason="Liscio account changed"
            )
            return "written" if counts.quickbooks_writes else "unchanged"
        if not may_create_in_quickbooks(account.status, archived=False):
            return "skipped_prospect"
        left_prospect = event.type == "account.updated" and is_prospect(status_before)
        if event.type == "account.created" or left_prospect:
            result = await create_or_link(
                pool, quickbooks, firm_id, connection.realm_id, account.id, event.event_id
            )
            return result.outcome
        return "unlinked_waits_for_sync"
    except NeedsReconnectError:
        return "skipped_needs_reconnect"


async def reconcile_unfinished_creates(pool: Pool, quickbooks: CustomerGateway) -> int:
    """After a crash: finish every create that was recorded but not completed (the same
    requestid makes QuickBooks answer with a customer it already created)."""
    finished = 0
    for pending in await unfinished_creates(pool):
        connection = await get_connection(pool, pending.firm_id)
        if connection is None or connection.status != "connected":
            continue
        await create_or_link(
            pool,
            quickbooks,
            pending.firm_id,
            connection.realm_id,
            pending.account_id,
            pending.request_id,
        )
        finished += 1
    return finished
