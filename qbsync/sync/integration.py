"""The integration page's reads and its Sync Now, disconnect and dry run (services/api
hands each request to one of these; `qbsync sync` and `qbsync disconnect` use them too).

Reads go through `uow.direct` (a statement each); the one write of a Sync Now request (its
run joined or opened, and its SyncRequest in the outbox) is one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from qbsync import tracing
from qbsync.db.connections import QuickBooksConnection
from qbsync.db.links import AuditRecord
from qbsync.db.records import RecordFilter, RecordItem, RecordKey, Suggestion
from qbsync.domain.accounts import (
    LISCIO_CREATE_EXPIRY,
    customer_may_be_linked,
    delink_reason,
    liscio_create_expired,
)
from qbsync.domain.fields import to_json
from qbsync.domain.matching import Ambiguity, Named, fold, match_by_name
from qbsync.domain.rules import SyncPlan
from qbsync.domain.rules import first_sync as first_sync_rules
from qbsync.errors import Conflict, NotFound, ReconnectNeeded
from qbsync.kafka.topics import SYNC_REQUESTS
from qbsync.sync.field_sync import plan_for
from qbsync.sync.ports import TokenRevoker
from qbsync.sync.unit_of_work import UnitOfWork
from schemas import SyncRequest


@dataclass(frozen=True)
class Overview:
    connection: QuickBooksConnection | None
    last_run: dict[str, Any] | None
    counts: dict[str, int]


async def overview(uow: UnitOfWork, firm_id: str) -> Overview:
    repos = uow.direct
    connection = await repos.connections.of_firm(firm_id)
    realm_id = await repos.records.realm_of(firm_id)
    last_run_id = await repos.runs.latest_of_firm(firm_id)
    last_run = await repos.runs.report(last_run_id) if last_run_id else None
    return Overview(connection, last_run, await repos.records.counts(firm_id, realm_id))


@dataclass(frozen=True)
class RecordsPage:
    items: list[RecordItem]
    next_after: RecordKey | None  # where the next page starts; None: this is the last
    # The unlinked customers of the page that Liscio was asked to create, by customer id.
    creating: dict[str, CreateInLiscio]


@dataclass(frozen=True)
class CreateInLiscio:
    """A Create in Liscio still waiting for Liscio's answer; `retryable` once it may be
    asked again (LISCIO_CREATE_EXPIRY)."""

    command_id: str
    asked_at: datetime | None
    retryable: bool


async def records_page(
    uow: UnitOfWork,
    firm_id: str,
    record_filter: RecordFilter,
    q: str | None,
    after: RecordKey | None,
    limit: int,
    liscio_create_expiry: timedelta = LISCIO_CREATE_EXPIRY,
) -> RecordsPage:
    repos = uow.direct
    realm_id = await repos.records.realm_of(firm_id)
    # One more than asked: whether a next page exists, without counting.
    items = await repos.records.page(firm_id, realm_id, record_filter, q, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    alone = [i.customer.id for i in items if i.customer is not None and i.link is None]
    waiting = await repos.liscio_creates.waiting(realm_id, alone) if realm_id and alone else {}
    now = datetime.now(UTC)
    creating = {
        customer_id: CreateInLiscio(
            c.command_id,
            c.asked_at,
            liscio_create_expired(c.asked_at, now, liscio_create_expiry),
        )
        for customer_id, c in waiting.items()
    }
    return RecordsPage(items, items[limit - 1].key if more else None, creating)


async def suggestions(
    uow: UnitOfWork, firm_id: str, *, account_id: str | None, customer_id: str | None
) -> list[Suggestion]:
    """Up to 10 unlinked, linkable records of the other side, the most similar name
    first. Exactly one of `account_id` and `customer_id` is given."""
    repos = uow.direct
    realm_id = await repos.records.realm_of(firm_id)
    if account_id is not None:
        account = await repos.records.account(firm_id, account_id)
        if account is None:
            raise NotFound("account", account_id)
        if realm_id is None:
            return []
        return await repos.records.suggest_customers(firm_id, realm_id, fold(account.name))
    assert customer_id is not None
    customer = await repos.records.customer(realm_id, customer_id) if realm_id else None
    if customer is None:
        raise NotFound("customer", customer_id)
    return await repos.records.suggest_accounts(firm_id, fold(customer.display_name))


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditRecord]
    next_before: int | None  # the id the next (older) page starts below


async def audit_page(
    uow: UnitOfWork, firm_id: str, account_id: str | None, before_id: int | None, limit: int
) -> AuditPage:
    entries = await uow.direct.audit.page(firm_id, account_id, before_id, limit + 1)
    more = len(entries) > limit
    return AuditPage(entries[:limit], entries[limit - 1].id if more else None)


async def run_of_firm(uow: UnitOfWork, firm_id: str, run_id: str) -> dict[str, Any]:
    report = await uow.direct.runs.report(run_id)
    if report is None or report["firm_id"] != firm_id:
        raise NotFound("run", run_id)
    return report


async def usable_connection(uow: UnitOfWork, firm_id: str) -> QuickBooksConnection:
    connection = await uow.direct.connections.of_firm(firm_id)
    if connection is None:
        raise Conflict(f"firm {firm_id} is not connected to QuickBooks")
    if not connection.usable:
        raise ReconnectNeeded(f"the QuickBooks connection of firm {firm_id} needs reconnecting")
    return connection


async def request_sync(uow: UnitOfWork, firm_id: str) -> dict[str, Any]:
    """Sync Now: the firm's open run joined, or a new one, with its request on
    `sync.requests` (through the outbox, in the same transaction) for the importer, which
    finds the run already holding that request. Returns the run as it stands."""
    await usable_connection(uow, firm_id)
    request = SyncRequest(
        request_id=str(uuid.uuid4()),
        firm_id=firm_id,
        kind="sync",
        requested_at=datetime.now(UTC),
    )
    # The run and the request carry this span's context: the run's steps continue its trace.
    with tracing.span("sync request", attributes={"qbsync.firm_id": firm_id}) as span:
        async with uow.begin() as tx:
            run, _ = await tx.runs.open_or_join(
                firm_id, request.request_id, request.kind, request.requested_at
            )
            await tx.outbox.enqueue([(SYNC_REQUESTS, firm_id, request)])
        if span is not None:
            span.set_attribute("qbsync.run_id", run.run_id)
    report = await uow.direct.runs.report(run.run_id)
    assert report is not None  # runs are never deleted
    return report


async def disconnect(uow: UnitOfWork, quickbooks: TokenRevoker, firm_id: str) -> str:
    """Revoke the firm's tokens at Intuit (best effort) and forget its connection; its
    records and links stay. Returns the realm it was connected to."""
    connection = await uow.direct.connections.of_firm(firm_id)
    if connection is None:
        raise Conflict(f"firm {firm_id} is not connected to QuickBooks")
    await quickbooks.revoke(connection.realm_id)
    await uow.direct.connections.remove(firm_id)
    return connection.realm_id


@dataclass(frozen=True)
class PlannedWrite:
    account_id: str
    side: str
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class DryRun:
    links: list[tuple[str, str]]  # (account_id, customer_id)
    writes: list[PlannedWrite]
    ambiguous: list[Ambiguity]


async def dry_run(uow: UnitOfWork, firm_id: str) -> DryRun:
    """What a Sync Now would do now, from the stored copies and with Sync Now's rules
    (matching, first sync of the new links, the next sync of the others; pairs it would
    delink write nothing): nothing is written anywhere, nothing is sent, QuickBooks is not
    called."""
    realm_id = (await usable_connection(uow, firm_id)).realm_id
    repos = uow.direct
    accounts = await repos.accounts.unlinked_names(firm_id)
    customers = [
        Named(c.customer_id, c.display_name)
        for c in await repos.customers.unlinked_names(realm_id)
        if customer_may_be_linked(c.active, c.deleted, c.parent_id)
    ]
    matched = match_by_name(accounts, customers)
    writes: list[PlannedWrite] = []
    sides = await repos.pairs.sides(firm_id, realm_id, matched.pairs)
    for account_id, (account, customer) in sorted(sides.items()):
        writes += _planned(account_id, first_sync_rules(account.fields, customer.fields))
    for pair in await repos.pairs.load(firm_id):
        if delink_reason(pair.account.archived, pair.customer.active, pair.customer.deleted):
            continue
        writes += _planned(pair.link.account_id, plan_for(pair))
    return DryRun(list(matched.pairs), writes, list(matched.ambiguities))


def _planned(account_id: str, plan: SyncPlan) -> Sequence[PlannedWrite]:
    return [
        PlannedWrite(account_id, w.side, w.field, to_json(w.old), to_json(w.new))
        for w in plan.writes
    ]
