"""What the pusher does with Liscio's account events (issue 5, DOMAIN.md rules 5, 6, 9).

- created in answer to our `account.create` (Create in Liscio): linked to its customer;
- created, non-Prospect, firm connected: look in QuickBooks for the name, link or create;
- updated, linked: the subsequent-sync rules (no call when nothing differs);
- updated, unlinked: only the stored copy changes, unless the account just left Prospect
  status (then it is created as above) or an earlier create is unfinished;
- archived: delinked; the customer stays in QuickBooks;
- firms without a usable connection: counted and skipped (Sync Now catches up later).

Updates of linked accounts, the bulk of the traffic, are handled a firm's queue at a time:
one transaction, one call per account whose synced fields differ (all calls concurrent,
paced by the realm's limiter), a few statements to record them all. Everything else takes
the one-by-one path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qbsync import metrics
from qbsync.domain.accounts import is_prospect, may_create_in_quickbooks
from qbsync.errors import Transient
from qbsync.quickbooks.errors import NeedsReconnectError
from qbsync.sync.by_hand import answer_liscio_create
from qbsync.sync.creating import create_or_link
from qbsync.sync.field_sync import apply_plans, plan_for, sync_account
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.removal import delink_archived
from qbsync.sync.unit_of_work import UnitOfWork
from schemas import AccountEvent

log = logging.getLogger("qbsync.sync.account_events")

CONSUMER = "pusher"


def supersedes(later: AccountEvent, earlier: AccountEvent) -> bool:
    """Whether applying `later` (of the same account) makes applying `earlier` redundant.
    Each event carries the account's whole state, so of consecutive updates only the last
    needs applying; created and archived events are always applied."""
    return later.type == "account.updated" and earlier.type == "account.updated"


def newer_of(waiting: AccountEvent, arriving: AccountEvent) -> tuple[AccountEvent, list[str]]:
    """Of two updates of one account (`arriving` read after `waiting`), the one to apply
    and the ids it makes redundant. A redelivery of the same event makes nothing redundant
    (marking its id would skip the event itself), and a late redelivery of an older event
    never displaces the newer one."""
    if arriving.event_id == waiting.event_id:
        return arriving, []
    if arriving.occurred_at < waiting.occurred_at:
        return waiting, [arriving.event_id]
    return arriving, [waiting.event_id]


@dataclass(frozen=True)
class QueuedEvent:
    """An event waiting in the pusher's queue, with the ids of the waiting events it
    absorbed (marked processed before it is applied)."""

    event: AccountEvent
    message: Any  # the Kafka message it came in: partition, offset, key, value
    absorbed: tuple[str, ...] = ()


def absorb(waiting: QueuedEvent, arriving: QueuedEvent) -> QueuedEvent | None:
    """An update arriving behind a waiting update of its account: one item stands for both,
    carrying the newer of the two (`newer_of`) and the ids of everything it absorbed."""
    if not supersedes(arriving.event, waiting.event):
        return None
    kept, redundant = newer_of(waiting.event, arriving.event)
    source = waiting if kept is waiting.event else arriving
    return QueuedEvent(
        kept, source.message, tuple(without(kept.event_id, [*waiting.absorbed, *redundant]))
    )


def superseded(events: Sequence[AccountEvent]) -> list[tuple[AccountEvent, list[str]]]:
    """Events of one account, in order, as (event to apply, ids it makes redundant)."""
    plan: list[tuple[AccountEvent, list[str]]] = []
    for event in events:
        if plan and supersedes(event, plan[-1][0]):
            previous, skipped = plan[-1]
            kept, redundant = newer_of(previous, event)
            plan[-1] = (kept, without(kept.event_id, [*skipped, *redundant]))
        else:
            plan.append((event, []))
    return plan


def without(event_id: str, ids: Sequence[str]) -> list[str]:
    """`ids` once each, in order, less `event_id` (the event that is applied)."""
    return [i for i in dict.fromkeys(ids) if i != event_id]


async def handle_account_events(
    uow: UnitOfWork, quickbooks: CustomerGateway, events: Sequence[AccountEvent]
) -> None:
    """Events of any accounts, in order per account. The accounts of a firm that are linked
    and got only updates are synced together (`sync_linked_updates`); every other account's
    events take the one-by-one path, accounts concurrently. An account whose QuickBooks call
    failed is left unprocessed (the others are done) and the failure is raised at the end."""
    by_account: dict[tuple[str, str], list[AccountEvent]] = {}
    for event in events:
        by_account.setdefault((event.firm_id, event.account.id), []).append(event)
    updates_by_firm: dict[str, dict[str, list[AccountEvent]]] = {}
    one_by_one: list[list[AccountEvent]] = []
    for (firm_id, account_id), queued in by_account.items():
        if all(event.type == "account.updated" for event in queued):
            updates_by_firm.setdefault(firm_id, {})[account_id] = queued
        else:
            one_by_one.append(queued)
    failures: list[Exception] = []
    for firm_id, updates in updates_by_firm.items():
        batch = await sync_linked_updates(uow, quickbooks, firm_id, updates)
        one_by_one.extend(batch.not_linked)
        failures.extend(batch.failures)
    results = await asyncio.gather(
        *(_handle_in_order(uow, quickbooks, queued) for queued in one_by_one),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
        if isinstance(result, Exception):
            failures.append(result)
    if failures:
        # A transient one first: the caller waits that out and applies them all again.
        failures.sort(key=lambda exc: not isinstance(exc, Transient))
        raise failures[0]


async def _handle_in_order(
    uow: UnitOfWork, quickbooks: CustomerGateway, events: Sequence[AccountEvent]
) -> None:
    """One account's events, one at a time (consecutive updates: only the last)."""
    for event, redundant in superseded(events):
        await mark_superseded(uow, redundant)
        outcome = await handle_account_event(uow, quickbooks, event)
        metrics.PUSHER_EVENTS.labels(outcome).inc()


async def mark_superseded(uow: UnitOfWork, event_ids: Sequence[str]) -> None:
    """Events that a later event of their account supersedes, as processed, *before* that
    later one is applied: it is acknowledged only once applied, so after a crash it comes
    again, while a superseded event redelivered on its own must not be applied after it."""
    if event_ids:
        await uow.direct.processed.mark(CONSUMER, event_ids)
        metrics.PUSHER_EVENTS.labels("superseded").inc(len(event_ids))


@dataclass
class LinkedBatch:
    not_linked: list[list[AccountEvent]] = field(default_factory=list)  # for the other path
    failures: list[Exception] = field(default_factory=list)


async def sync_linked_updates(
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    updates: Mapping[str, Sequence[AccountEvent]],
) -> LinkedBatch:
    """Updates of a firm's accounts (each account's in order): for the linked ones, one
    transaction locks them all, stores each one's latest state, applies the
    subsequent-sync rules with the QuickBooks calls running concurrently (so the realm's
    quota is used as fast as its limiter allows) and marks the events processed. Accounts
    that are not linked (or a firm that is not connected) are returned for the one-by-one
    path, untouched, so that it sees the account as it was (a Prospect leaving that status
    is created there)."""
    batch = LinkedBatch()
    # Each account's latest state is kept before, not inside, the transaction below: that
    # one waits on QuickBooks (a throttled realm, up to a minute), and rows it wrote would
    # hold the matcher's storing of every firm's accounts as long. `store` keeps the newest
    # state whatever the order, and the other path stores the same again.
    await uow.direct.accounts.store([queued[-1] for queued in updates.values()])
    async with uow.begin(calls_quickbooks=True) as tx:
        connection = await tx.connections.of_firm(firm_id)
        if connection is None or not connection.usable:
            batch.not_linked.extend(list(queued) for queued in updates.values())
            return batch
        # Each event carries the account's whole state and an account's events are handled
        # in order, so when its last queued event was processed every earlier one was too
        # (redelivery); otherwise only that last state matters. One look per account.
        seen = await tx.processed.among(CONSUMER, [q[-1].event_id for q in updates.values()])
        fresh: dict[str, Sequence[AccountEvent]] = {}
        duplicates = 0
        for account_id, queued in updates.items():
            if queued[-1].event_id in seen:
                duplicates += len(queued)
            else:
                fresh[account_id] = queued
        if duplicates:
            metrics.PUSHER_EVENTS.labels("duplicate").inc(duplicates)
        await tx.locks.accounts(firm_id, list(fresh))
        pairs = await tx.pairs.load(firm_id, list(fresh))  # with the states stored above
        linked = {pair.link.account_id for pair in pairs}
        batch.not_linked.extend(list(q) for a, q in fresh.items() if a not in linked)
        mine = {a: q for a, q in fresh.items() if a in linked}
        if not mine:
            return batch
        outcomes = await apply_plans(
            tx,
            quickbooks,
            [(pair, plan_for(pair)) for pair in pairs],
            reason="Liscio account changed",
        )
        done: list[str] = []
        pushed: dict[str, str | None] = {}
        for outcome in outcomes:
            if outcome.failure is not None:
                batch.failures.append(outcome.failure)
                continue
            queued = mine[outcome.account_id]
            done.extend(event.event_id for event in queued)
            pushed[outcome.account_id] = queued[-1].account.status
            written = outcome.counts.quickbooks_writes
            metrics.PUSHER_EVENTS.labels("written" if written else "unchanged").inc()
            if len(queued) > 1:
                metrics.PUSHER_EVENTS.labels("superseded").inc(len(queued) - 1)
        await tx.accounts.record_pushed_statuses(firm_id, pushed)
        await tx.processed.mark(CONSUMER, done)
    return batch


async def handle_account_event(
    uow: UnitOfWork, quickbooks: CustomerGateway, event: AccountEvent
) -> str:
    """Apply one event; returns its outcome (a metric label)."""
    db = uow.direct
    if await db.processed.among(CONSUMER, [event.event_id]):
        return "duplicate"
    firm_id, account_id = event.firm_id, event.account.id
    status_before = await db.accounts.status_last_pushed(firm_id, account_id)
    await db.accounts.store([event])
    outcome = await _apply(uow, quickbooks, event, status_before)
    await db.accounts.record_pushed_statuses(firm_id, {account_id: event.account.status})
    await db.processed.mark(CONSUMER, [event.event_id])
    return outcome


async def _apply(
    uow: UnitOfWork, quickbooks: CustomerGateway, event: AccountEvent, status_before: str | None
) -> str:
    firm_id, account = event.firm_id, event.account
    answered = await answer_liscio_create(uow, quickbooks, event)
    if answered is not None:
        return answered
    if event.type == "account.archived":
        removed = await delink_archived(uow, firm_id, account.id)
        return "delinked" if removed else "archived"
    connection = await uow.direct.connections.of_firm(firm_id)
    if connection is None:
        return "skipped_not_connected"
    if not connection.usable:
        return "skipped_needs_reconnect"
    try:
        if await uow.direct.links.of_account(firm_id, account.id) is not None:
            counts = await sync_account(
                uow, quickbooks, firm_id, account.id, reason="Liscio account changed"
            )
            return "written" if counts.quickbooks_writes else "unchanged"
        if not may_create_in_quickbooks(account.status, archived=False):
            return "skipped_prospect"
        left_prospect = event.type == "account.updated" and is_prospect(status_before)
        if event.type == "account.created" or left_prospect:
            result = await create_or_link(
                uow, quickbooks, firm_id, connection.realm_id, account.id, event.event_id
            )
            return result.outcome
        return "unlinked_waits_for_sync"
    except NeedsReconnectError:
        return "skipped_needs_reconnect"


async def reconcile_unfinished_creates(uow: UnitOfWork, quickbooks: CustomerGateway) -> int:
    """After a crash: finish every create that was recorded but not completed (the same
    requestid makes QuickBooks answer with a customer it already created). One that fails
    (its realm's QuickBooks unavailable, say) does not hold up the others: each is tried,
    then the first failure is raised, for the caller to try again later."""
    finished = 0
    failures: list[Exception] = []
    for pending in await uow.direct.pending_creates.unfinished():
        connection = await uow.direct.connections.of_firm(pending.firm_id)
        if connection is None or not connection.usable:
            continue
        try:
            await create_or_link(
                uow,
                quickbooks,
                pending.firm_id,
                connection.realm_id,
                pending.account_id,
                pending.request_id,
            )
        except Exception as exc:
            failures.append(exc)
            continue
        finished += 1
    if failures:
        raise failures[0]
    return finished
