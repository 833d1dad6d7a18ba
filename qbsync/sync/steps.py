"""The three steps of a Sync Now run.

import (importer): every customer of the realm, active and inactive, to `qbo.customers`,
                   tagged with the run.
match  (matcher):  once every imported customer is stored, link unlinked accounts to
                   unlinked customers by name, with the first sync of each new link in the
                   transaction that makes it (those that write to QuickBooks after).
push   (matcher):  the subsequent-sync rules for every linked pair; links whose account
                   was archived or whose customer was deactivated or merged are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from qbsync.db.pairs import LinkedPair
from qbsync.db.runs import LEASE_SECONDS, Run, Step
from qbsync.domain.accounts import customer_may_be_linked, delink_reason
from qbsync.domain.matching import Named, match_by_name
from qbsync.domain.rules import first_sync
from qbsync.errors import ConfigurationError
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import QBO_CUSTOMERS
from qbsync.quickbooks.errors import QuickBooksError
from qbsync.quickbooks.limiter import bulk_work
from qbsync.quickbooks.mapping import customer_message
from qbsync.sync.field_sync import PairOutcome, SyncCounts, apply_plans, plan_for, sync_accounts
from qbsync.sync.linking import create_links, remove_link
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.unit_of_work import UnitOfWork

log = logging.getLogger("qbsync.sync.steps")

T = TypeVar("T")
R = TypeVar("R")
FIRST_SYNC = "first sync"
# Chunks worked on at once (a connection each): enough to keep PostgreSQL busy while this
# process prepares the next chunk, few enough to leave the pool to the consumers.
WORKERS = 4
# Pairs that write to QuickBooks per transaction: about one round of the realm's requests
# in flight, so locks are held for a round trip or three, not for a long queue.
WRITING_CHUNK = 30


class StepFailed(Exception):
    """The step cannot go on; the reason is shown in `qbsync sync --json`."""


@contextlib.asynccontextmanager
async def holding_step(
    uow: UnitOfWork, run_id: str, step: Step, every: float = LEASE_SECONDS / 3
) -> AsyncIterator[None]:
    """The claimed step's lease renewed every `every` seconds while the block works on it:
    a step outlives its lease only while its process is alive, so a process that dies has
    its step taken over by another within one lease."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await uow.direct.runs.renew_lease(run_id, step)
            except Exception as exc:  # PostgreSQL away: the block's own work finds out too
                log.warning(
                    "could not renew a step's lease",
                    extra={"run_id": run_id, "step": step, "error": str(exc)},
                )

    renewing = asyncio.ensure_future(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing


async def realm_of_firm(uow: UnitOfWork, firm_id: str) -> str:
    connection = await uow.direct.connections.of_firm(firm_id)
    if connection is None:
        raise StepFailed(f"firm {firm_id} has no QuickBooks connection")
    if not connection.usable:
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
    customers were sent (the matcher waits until it has stored that many of this run).
    Returns only once Kafka acknowledged every one of them (raises DeliveryFailed if not),
    so a step marked done after it was really delivered."""
    sent: set[str] = set()
    batch = producer.batch(QBO_CUSTOMERS)
    async for customer in quickbooks.customers(realm_id, include_inactive=True):
        key, value = customer_message(
            realm_id, customer, source=source, firm_id=firm_id, run_id=run_id
        )
        batch.send(key, value)
        sent.add(key)
    await batch.confirm()
    return len(sent)


async def import_run(
    uow: UnitOfWork, producer: Producer, quickbooks: CustomerGateway, run: Run
) -> None:
    """The import step of a claimed run, finished with the number of customers sent (the
    matcher's cue), or failed with the reason when the firm or QuickBooks cannot serve it."""
    runs = uow.direct.runs
    try:
        realm_id = await realm_of_firm(uow, run.firm_id)
        await runs.set_realm(run.run_id, realm_id)
        async with holding_step(uow, run.run_id, "import"):
            with bulk_work():  # pages give way to writes a person waits for
                count = await import_customers(
                    producer, quickbooks, run.firm_id, realm_id, run.run_id
                )
    except (StepFailed, QuickBooksError, ConfigurationError) as exc:
        log.warning("import failed", extra={"run_id": run.run_id, "reason": str(exc)})
        await runs.finish_step(run.run_id, "import", {}, failure=str(exc))
        return
    await runs.finish_step(run.run_id, "import", {"customers": count})
    log.info("import done", extra={"run_id": run.run_id, "customers": count})


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
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    realm_id: str,
    run_id: str | None,
    chunk: int = 1000,
    workers: int = WORKERS,
) -> MatchOutcome:
    accounts = await uow.direct.accounts.unlinked_names(firm_id)
    # A customer waiting for the account Liscio is creating for it gets that one.
    awaiting = await uow.direct.liscio_creates.awaiting(realm_id)
    customers = [
        Named(c.customer_id, c.display_name)
        for c in await uow.direct.customers.unlinked_names(realm_id)
        if customer_may_be_linked(c.active, c.deleted, c.parent_id)
        and c.customer_id not in awaiting
    ]
    result = match_by_name(accounts, customers)
    del accounts, customers  # a firm's worth of names: not kept through the first sync
    async with uow.begin() as tx:
        await tx.links.replace_ambiguities(firm_id, result.ambiguities, run_id)

    reason = "Sync Now: names equal ignoring case"

    async def link_and_first_sync(pairs: Sequence[tuple[str, str]]) -> tuple[int, SyncCounts]:
        """A chunk's links, and the first sync of those that write nothing to QuickBooks,
        in one transaction under the same locks: their pairs are read once and their links
        are inserted first-synced (no second lock, lookup and update of the same rows).
        Those that write to QuickBooks are left owed: a transaction of 1,000 links must not
        wait for QuickBooks (`sync_new_links` below does them)."""
        async with uow.for_accounts(firm_id, [a for a, _ in pairs]) as tx:
            sides = await tx.pairs.sides(firm_id, realm_id, pairs)
            plans = {
                account_id: first_sync(account.fields, customer.fields)
                for account_id, (account, customer) in sides.items()
            }
            created = await create_links(
                tx,
                firm_id,
                realm_id,
                pairs,
                how="auto",
                reason=reason,
                run_id=run_id,
                first_synced=[a in plans and not plans[a].to_quickbooks for a, _ in pairs],
            )
            planned = [
                (LinkedPair(link, *sides[link.account_id]), plans[link.account_id])
                for link in created
                if link.first_synced_at is not None
            ]
            outcomes = await apply_plans(tx, quickbooks, planned, reason=FIRST_SYNC, run_id=run_id)
        return len(created), _counted(outcomes)

    async def link(pairs: Sequence[tuple[str, str]]) -> tuple[int, SyncCounts]:
        # Chunks hold disjoint accounts and customers, so they may commit in any order.
        try:
            linked, counts = await link_and_first_sync(pairs)
        except Exception as exc:  # nothing of it was kept: linked alone, first syncs owed
            log.warning(
                "linking with first sync failed; linking the chunk alone",
                extra={"firm_id": firm_id, "error": str(exc)},
            )
            async with uow.for_accounts(firm_id, [a for a, _ in pairs]) as tx:
                created = await create_links(
                    tx, firm_id, realm_id, pairs, how="auto", reason=reason, run_id=run_id
                )
            linked, counts = len(created), SyncCounts()
        return linked, counts

    linked, first = 0, SyncCounts()
    chunks = _chunks(result.pairs, chunk)
    for chunk_linked, chunk_first in await _in_parallel(link, chunks, workers):
        linked += chunk_linked
        first.add(chunk_first)
    # The first sync of every link still owed one: those that write to QuickBooks, and any
    # left over from before (interrupted, or whose QuickBooks call failed).
    owed = await uow.direct.accounts.awaiting_first_sync(firm_id)
    first.add(await sync_new_links(uow, quickbooks, firm_id, owed, run_id, workers=workers))
    return MatchOutcome(linked, len(result.ambiguities), first)


def _counted(outcomes: Sequence[PairOutcome]) -> SyncCounts:
    counts = SyncCounts()
    for outcome in outcomes:
        if outcome.failure is None:
            counts.add(outcome.counts)
        else:  # nothing was recorded for it: its first sync is still owed
            error = f"{outcome.account_id}: {outcome.failure}"
            counts.add(SyncCounts(pairs=1, errors=[error]))
    return counts


async def sync_new_links(
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    account_ids: Sequence[str],
    run_id: str | None,
    *,
    chunk: int = 500,
    writing_chunk: int = WRITING_CHUNK,
    workers: int = WORKERS,
) -> SyncCounts:
    """The first sync of many new links: the rules and effects of `sync_accounts`, with
    each chunk's effects recorded at once (`apply_plans`), under the chunk's account locks.
    Pairs that write to QuickBooks are set aside and go in small chunks of their own, so a
    transaction holds few locks while it waits for QuickBooks (whose calls run concurrently
    within the realm's limiter). A chunk that fails as a whole is retried pair by pair
    (`sync_accounts`), where one pair's failure never stops the others."""

    async def settle(ids: Sequence[str], calls_quickbooks: bool) -> tuple[SyncCounts, list[str]]:
        try:
            async with uow.for_accounts(firm_id, ids, calls_quickbooks=calls_quickbooks) as tx:
                planned, later = [], []
                for pair in await tx.pairs.load(firm_id, ids):
                    plan = plan_for(pair)
                    if plan.to_quickbooks and not calls_quickbooks:
                        later.append(pair.link.account_id)
                    else:
                        planned.append((pair, plan))
                outcomes = await apply_plans(
                    tx, quickbooks, planned, reason=FIRST_SYNC, run_id=run_id
                )
        except Exception as exc:  # retried pair by pair below, where failures are counted
            log.warning(
                "first sync of a chunk failed; syncing its pairs one by one",
                extra={"firm_id": firm_id, "error": str(exc)},
            )
            return SyncCounts(), list(ids)
        return _counted(outcomes), later

    total, writing, failed = SyncCounts(), [], []
    writers = asyncio.Semaphore(workers)

    async def write(ids: Sequence[str]) -> None:
        async with writers:
            counts, retry = await settle(ids, calls_quickbooks=True)
        total.add(counts)
        failed.extend(retry)

    # The pairs that write to QuickBooks go as soon as a writing chunk of them is known,
    # so QuickBooks' answers come while the other chunks are recorded, not after them all.
    async with asyncio.TaskGroup() as calls:

        async def record(ids: Sequence[str]) -> None:
            counts, later = await settle(ids, calls_quickbooks=False)
            total.add(counts)
            writing.extend(later)
            while len(writing) >= writing_chunk:
                calls.create_task(write(writing[:writing_chunk]))
                del writing[:writing_chunk]

        await _in_parallel(record, _chunks(account_ids, chunk), workers)
        for ids in _chunks(writing, writing_chunk):
            calls.create_task(write(ids))
    total.add(
        await sync_accounts(uow, quickbooks, firm_id, failed, reason=FIRST_SYNC, run_id=run_id)
    )
    return total


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


async def _in_parallel(
    work: Callable[[T], Awaitable[R]], items: Sequence[T], workers: int
) -> list[R]:
    """`work` on every item, at most `workers` at a time; results in the items' order."""
    gate = asyncio.Semaphore(workers)

    async def one(item: T) -> R:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


@dataclass(frozen=True)
class PushOutcome:
    delinked: int
    synced: SyncCounts

    def as_dict(self) -> dict[str, int]:
        return {"delinked": self.delinked} | self.synced.as_dict()


async def push_firm(
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    run_id: str | None,
    *,
    chunk: int = 500,
    workers: int = WORKERS,
) -> PushOutcome:
    """Every linked pair, a chunk at a time (several chunks at once; a firm's pairs are
    never all in memory): a pair whose account was archived or whose customer went away is
    delinked, every other pair gets the subsequent-sync rules (`sync_accounts`)."""

    async def push(ids: Sequence[str]) -> tuple[int, SyncCounts]:
        delinked, keep = 0, []
        for pair in await uow.direct.pairs.load(firm_id, ids):
            reason = delink_reason(
                pair.account.archived, pair.customer.active, pair.customer.deleted
            )
            if reason is None:
                keep.append(pair.link.account_id)
                continue
            async with uow.for_accounts(firm_id, [pair.link.account_id]) as tx:
                if await remove_link(
                    tx, firm_id, pair.link.account_id, reason=reason, run_id=run_id
                ):
                    delinked += 1
        synced = await sync_accounts(
            uow, quickbooks, firm_id, keep, reason="Sync Now", run_id=run_id
        )
        return delinked, synced

    linked = await uow.direct.accounts.linked_ids(firm_id)
    delinked, synced = 0, SyncCounts()
    for chunk_delinked, chunk_synced in await _in_parallel(push, _chunks(linked, chunk), workers):
        delinked += chunk_delinked
        synced.add(chunk_synced)
    return PushOutcome(delinked, synced)
