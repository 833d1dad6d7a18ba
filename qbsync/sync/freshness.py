"""Keeping `qbo.customers` fresh between Sync Now runs (run by the importer):
webhook notifications and CDC polling, so a customer created or changed in QuickBooks
appears without anyone pressing Sync Now."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import QBO_CUSTOMERS
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.errors import ObjectNotFoundError
from qbsync.quickbooks.mapping import customer_message
from qbsync.sync.steps import import_customers
from qbsync.sync.unit_of_work import UnitOfWork
from schemas import CustomerRecord, QboChangeNotice

log = logging.getLogger("qbsync.sync.freshness")

CDC_LOOKBACK = timedelta(days=30)


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


async def apply_change_notice(
    uow: UnitOfWork, producer: Producer, quickbooks: QuickBooksClient, notice: QboChangeNotice
) -> None:
    """Read the changed customer (notifications carry ids, not values) and publish it."""
    if notice.entity != "Customer":
        return
    connection = await uow.direct.connections.of_realm(notice.realm_id)
    if connection is None or not connection.usable:
        log.info(
            "change of a realm without a usable connection ignored",
            extra={"realm_id": notice.realm_id},
        )
        return
    realm, firm = notice.realm_id, connection.firm_id
    messages: list[tuple[str, CustomerRecord | bytes]] = []
    if notice.operation == "Merge" and notice.deleted_id:
        messages.append(tombstone_message(realm, notice.deleted_id, firm, "webhook"))
    if notice.operation == "Delete":
        messages.append(tombstone_message(realm, notice.entity_id, firm, "webhook"))
    else:
        try:
            customer = await quickbooks.read_customer(realm, notice.entity_id)
            messages.append(customer_message(realm, customer, source="webhook", firm_id=firm))
        except ObjectNotFoundError:
            messages.append(tombstone_message(realm, notice.entity_id, firm, "webhook"))
    for key, value in messages:
        await producer.send(QBO_CUSTOMERS, key, value)


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
) -> int:
    """One CDC round for one realm; returns how many customers it published. Only one
    process polls a realm at a time (`cdc_marks.claim`, held for the round)."""
    async with uow.begin(calls_quickbooks=True) as tx:
        if not await tx.cdc_marks.claim(realm_id):
            return 0
        mark = await tx.cdc_marks.get(realm_id)
        now = datetime.now(UTC)
        if mark is None:
            next_mark, published = now, 0  # first sight: Sync Now imports everything
        elif now - mark >= CDC_LOOKBACK - timedelta(hours=1):
            log.info("CDC mark older than 30 days: full import", extra={"realm_id": realm_id})
            published = await import_customers(
                producer, quickbooks, firm_id, realm_id, None, source="cdc"
            )
            next_mark = now
        else:
            changes = await quickbooks.customer_changes(realm_id, mark)
            for customer in changes.customers:
                key, value = (
                    tombstone_message(realm_id, str(customer["Id"]), firm_id, "cdc")
                    if customer.get("status") == "Deleted"
                    else customer_message(realm_id, customer, source="cdc", firm_id=firm_id)
                )
                await producer.send_soon(QBO_CUSTOMERS, key, value)
            await producer.flush()
            published = len(changes.customers)
            next_mark = _next_mark(changes.customers, changes.time, changes.maybe_truncated)
        await tx.cdc_marks.set(realm_id, next_mark)
        return published
