"""Keeping `qbo.customers` fresh between Sync Now runs (run by the importer):
webhook notifications and CDC polling, so a customer created or changed in QuickBooks
appears without anyone pressing Sync Now.

Intuit meters reads, so webhooks drive freshness and CDC is the safety net: a notification
makes one CDC round from the realm's mark, which returns every customer changed since
(a burst of notifications costs one read, not one per customer: a notice whose change the
mark already covers costs nothing); without notifications a realm is polled every
`QBSYNC_CDC_INTERVAL_SECONDS` (30 minutes), and the first round after midnight (UTC) looks
back a day further, to reconcile whatever a round may have missed."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from qbsync import metrics
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import QBO_CUSTOMERS
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.limiter import bulk_work
from qbsync.quickbooks.mapping import customer_message
from qbsync.sync.steps import import_customers
from qbsync.sync.unit_of_work import UnitOfWork
from schemas import CustomerRecord, QboChangeNotice

log = logging.getLogger("qbsync.sync.freshness")

CDC_LOOKBACK = timedelta(days=30)
RECONCILE_LOOKBACK = timedelta(days=1)
# How long a notification waits for the rest of its burst before its CDC round.
COALESCE_SECONDS = 1.0
# How long a notice waits for another process's CDC round of the realm to cover it.
COVER_WAIT_SECONDS = 30.0


def tombstone_message(
    realm_id: str, customer_id: str, firm_id: str | None, source: str
) -> tuple[str, CustomerRecord]:
    """The `qbo.customers` key and record of a customer QuickBooks deleted or merged away:
    no fields, only that it is gone."""
    record = CustomerRecord(
        realm_id=realm_id,
        customer_id=customer_id,
        display_name="",
        active=False,
        deleted=True,
        firm_id=firm_id,
        source=source,
    )
    return f"{realm_id}:{record.customer_id}", record


def covered(changed_at: datetime, mark: datetime | None) -> bool:
    """Whether a CDC round that ended at `mark` (QuickBooks' time) returned a change made at
    `changed_at` (no mark: the realm was never read). A stamp in whole seconds (a legacy
    notification's `lastUpdated`, MetaData times) may stand for any moment of that second,
    so only a mark past the second covers it; CloudEvents stamp to the millisecond."""
    if mark is None:
        return False
    if changed_at.microsecond == 0:
        return changed_at + timedelta(seconds=1) <= mark
    return changed_at < mark


def due_for_poll(mark: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether the safety-net poll should read the realm now (no webhook kept it fresh)."""
    return mark is None or now - mark >= interval


def since_for_round(mark: datetime, now: datetime) -> datetime:
    """Where a round reads from: the mark, or, for the first round of a UTC day, a day
    further back (the daily reconciliation; it costs no extra read)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if mark < midnight <= now:
        return max(mark - RECONCILE_LOOKBACK, now - CDC_LOOKBACK + timedelta(hours=1))
    return mark


async def apply_change_notice(
    uow: UnitOfWork,
    producer: Producer,
    quickbooks: QuickBooksClient,
    notice: QboChangeNotice,
    *,
    coalesce_seconds: float = COALESCE_SECONDS,
) -> bool:
    """Bring the realm up to date after a notification; returns whether it cost a CDC
    round. Notifications carry ids, not values: the round reads the values of everything
    changed since the mark, this change and the rest of its burst."""
    if notice.entity != "Customer":
        metrics.WEBHOOK_CHANGES_IGNORED.labels("entity").inc()
        return False
    connection = await uow.direct.connections.of_realm(notice.realm_id)
    if connection is None or not connection.usable:
        metrics.WEBHOOK_CHANGES_IGNORED.labels("unknown_realm").inc()
        log.info(
            "change of a realm without a usable connection ignored",
            extra={"realm_id": notice.realm_id},
        )
        return False
    realm, firm = notice.realm_id, connection.firm_id
    gone = notice.deleted_id if notice.operation == "Merge" else None
    if notice.operation == "Delete":
        gone = notice.entity_id
    if gone:  # the link goes now; CDC shows only that the customer is deleted
        await producer.send(QBO_CUSTOMERS, *tombstone_message(realm, gone, firm, "webhook"))
    changed_at = notice.last_updated or notice.received_at
    settle = (notice.received_at - datetime.now(UTC)).total_seconds() + coalesce_seconds
    if settle > 0:
        await asyncio.sleep(min(settle, coalesce_seconds))
    deadline = asyncio.get_running_loop().time() + COVER_WAIT_SECONDS
    while not covered(changed_at, await uow.direct.cdc_marks.get(realm)):
        if await poll_realm(uow, producer, quickbooks, firm, realm) is not None:
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False  # the safety-net poll reads it later
        await asyncio.sleep(0.2)  # another process is polling the realm; it may cover this
    metrics.WEBHOOK_CHANGES_IGNORED.labels("covered").inc()
    return False


def _next_mark(customers: list[dict[str, Any]], server_time: datetime, truncated: bool) -> datetime:
    """CDC answers at most 1000 objects: when it may have cut the list, carry on from the
    newest change it did return instead of from the server's time."""
    if not truncated:
        return server_time
    times = [
        datetime.fromisoformat(c["MetaData"]["LastUpdatedTime"])
        for c in customers
        if (c.get("MetaData") or {}).get("LastUpdatedTime")
    ]
    return max(times) if times else server_time


async def poll_realm(
    uow: UnitOfWork, producer: Producer, quickbooks: QuickBooksClient, firm_id: str, realm_id: str
) -> int | None:
    """One CDC round for one realm; returns how many customers it published, or None when
    another process is polling the realm (`cdc_marks.claim`, held for the round)."""
    with bulk_work():
        return await _poll_realm(uow, producer, quickbooks, firm_id, realm_id)


async def _poll_realm(
    uow: UnitOfWork, producer: Producer, quickbooks: QuickBooksClient, firm_id: str, realm_id: str
) -> int | None:
    async with uow.begin(calls_quickbooks=True) as tx:
        if not await tx.cdc_marks.claim(realm_id):
            return None
        mark = await tx.cdc_marks.get(realm_id)
        now = datetime.now(UTC)
        if mark is not None and now - mark >= CDC_LOOKBACK - timedelta(hours=1):
            log.info("CDC mark older than 30 days: full import", extra={"realm_id": realm_id})
            published = await import_customers(
                producer, quickbooks, firm_id, realm_id, None, source="cdc"
            )
            next_mark = now
        else:
            # First sight: the last day, which covers the realm's connection and whatever
            # was notified before this first round.
            since = now - RECONCILE_LOOKBACK if mark is None else since_for_round(mark, now)
            changes = await quickbooks.customer_changes(realm_id, since)
            for customer in changes.customers:
                key, value = (
                    tombstone_message(realm_id, str(customer["Id"]), firm_id, "cdc")
                    if customer.get("status") == "Deleted"
                    else customer_message(realm_id, customer, source="cdc", firm_id=firm_id)
                )
                await producer.send_soon(QBO_CUSTOMERS, key, value)
            await producer.flush()
            published = len(changes.customers)
            next_mark = max(
                mark or since, _next_mark(changes.customers, changes.time, changes.maybe_truncated)
            )
        await tx.cdc_marks.set(realm_id, next_mark)
        return published
