"""The three steps of a Sync Now run.

import (importer): every customer of the realm, active and inactive, to `qbo.customers`,
                   tagged with the run.
match  (matcher):  once every imported customer is stored, link unlinked accounts to
                   unlinked customers by name, then the first sync of each new link.
push   (matcher):  the subsequent-sync rules for every linked pair; links whose account
                   was archived or whose customer was deactivated or merged are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from qbsync.db.accounts import unlinked_accounts
from qbsync.db.connections import get_connection
from qbsync.db.customers import unlinked_customers
from qbsync.db.links import replace_ambiguities
from qbsync.db.pairs import load_pairs
from qbsync.domain.accounts import customer_may_be_linked, delink_reason
from qbsync.domain.matching import Named, match_by_name
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import QBO_CUSTOMERS
from qbsync.quickbooks.mapping import customer_record
from qbsync.sync.linking import create_links, remove_link
from qbsync.sync.locks import lock_accounts
from qbsync.sync.pairs import SyncCounts, sync_accounts
from qbsync.sync.ports import CustomerGateway

log = logging.getLogger("qbsync.sync.steps")

KeepAlive = Callable[[], Awaitable[None]]


class StepFailed(Exception):
    """The step cannot go on; the reason is shown in `qbsync sync --json`."""


async def realm_of_firm(pool: asyncpg.Pool, firm_id: str) -> str:
    connection = await get_connection(pool, firm_id)
    if connection is None:
        raise StepFailed(f"firm {firm_id} has no QuickBooks connection")
    if connection.status != "connected":
        raise StepFailed(
            f"the QuickBooks connection of firm {firm_id} needs reconnecting"
            + (f" ({connection.status_reason})" if connection.status_reason else "")
        )
    return connection.realm_id


async def import_customers(
    producer: Producer,
    quickbooks: CustomerGateway,
    firm_id: str,
    realm_id: str,
    run_id: str | None,
    source: str = "import",
) -> int:
    """Stream every customer of the realm to `qbo.customers`; returns how many distinct
    customers were sent (the matcher waits until it has stored that many of this run)."""
    sent: set[str] = set()
    pending = []
    async for customer in quickbooks.customers(realm_id, include_inactive=True):
        record = customer_record(realm_id, customer, source=source, firm_id=firm_id, run_id=run_id)
        pending.append(
            await producer.send_soon(QBO_CUSTOMERS, f"{realm_id}:{record.customer_id}", record)
        )
        sent.add(record.customer_id)
        if len(pending) >= 5000:
            for future in pending:
                await future
            pending.clear()
    for future in pending:
        await future
    return len(sent)


@dataclass(frozen=True)
class MatchOutcome:
    linked: int
    ambiguous: int
    first_sync: SyncCounts

    def as_dict(self) -> dict[str, int]:
        return {"linked": self.linked, "ambiguous": self.ambiguous} | {
            f"first_sync_{k}": v for k, v in self.first_sync.as_dict().items()
        }


async def match_firm(
    pool: asyncpg.Pool,
    quickbooks: CustomerGateway,
    firm_id: str,
    realm_id: str,
    run_id: str | None,
    keep_alive: KeepAlive,
    chunk: int = 1000,
) -> MatchOutcome:
    accounts = await unlinked_accounts(pool, firm_id)
    customers = [
        c
        for c in await unlinked_customers(pool, realm_id)
        if customer_may_be_linked(c.active, c.deleted, c.parent_id)
    ]
    result = match_by_name(
        [Named(a.account_id, a.name) for a in accounts],
        [Named(c.customer_id, c.display_name) for c in customers],
    )
    async with pool.acquire() as conn, conn.transaction():
        await replace_ambiguities(conn, firm_id, result.ambiguities, run_id)

    linked = 0
    for start in range(0, len(result.pairs), chunk):
        pairs = result.pairs[start : start + chunk]
        async with pool.acquire() as conn, conn.transaction():
            await lock_accounts(conn, firm_id, [a for a, _ in pairs])
            created = await create_links(
                conn,
                firm_id,
                realm_id,
                pairs,
                how="auto",
                reason="Sync Now: names equal ignoring case",
                run_id=run_id,
            )
            linked += len(created)
        await keep_alive()

    # The first sync of every link still owed one: the new ones, and any interrupted before.
    owed = [
        p.link.account_id for p in await load_pairs(pool, firm_id) if p.link.first_synced_at is None
    ]
    first = await sync_accounts(pool, quickbooks, firm_id, owed, reason="Sync Now", run_id=run_id)
    return MatchOutcome(linked, len(result.ambiguities), first)


@dataclass(frozen=True)
class PushOutcome:
    delinked: int
    synced: SyncCounts

    def as_dict(self) -> dict[str, int]:
        return {"delinked": self.delinked} | self.synced.as_dict()


async def push_firm(
    pool: asyncpg.Pool,
    quickbooks: CustomerGateway,
    firm_id: str,
    run_id: str | None,
) -> PushOutcome:
    pairs = await load_pairs(pool, firm_id)
    delinked = 0
    for pair in pairs:
        reason = delink_reason(pair.account.archived, pair.customer.active, pair.customer.deleted)
        if reason is None:
            continue
        async with pool.acquire() as conn, conn.transaction():
            await lock_accounts(conn, firm_id, [pair.link.account_id])
            if await remove_link(conn, firm_id, pair.link.account_id, reason=reason, run_id=run_id):
                delinked += 1
    keep = [
        p.link.account_id
        for p in pairs
        if delink_reason(p.account.archived, p.customer.active, p.customer.deleted) is None
    ]
    synced = await sync_accounts(pool, quickbooks, firm_id, keep, reason="Sync Now", run_id=run_id)
    return PushOutcome(delinked, synced)
