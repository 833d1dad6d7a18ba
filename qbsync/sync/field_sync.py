"""Applying the sync rules to linked pairs.

A pair that has not had its first sync gets the first-sync rules, every other pair the
subsequent-sync rules (qbsync.domain.rules). Values go to QuickBooks through the gateway
and to Liscio as `account.fill_fields` commands; each value written is audited. Equal
values cause no call at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qbsync import metrics
from qbsync.db.links import AuditEntry
from qbsync.db.pairs import LinkedPair
from qbsync.domain.fields import FIELD_NAMES, FieldName, FieldValue, to_json
from qbsync.domain.rules import SyncPlan, first_sync, subsequent_sync
from qbsync.errors import RecordRefused
from qbsync.kafka.topics import ACCOUNT_COMMANDS, QBO_CUSTOMERS
from qbsync.quickbooks.mapping import customer_record, fields_to_qbo
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.unit_of_work import OutgoingMessage, Repositories, UnitOfWork
from schemas import AccountCommand, CustomerRecord
from schemas.encoding import message_json

log = logging.getLogger("qbsync.sync.field_sync")

# QuickBooks answers that concern this one record: recorded on the account for a person,
# never retried and never blocking other accounts.


def plan_for(pair: LinkedPair) -> SyncPlan:
    if pair.link.first_synced_at is None:
        return first_sync(pair.account.fields, pair.customer.fields)
    return subsequent_sync(pair.account.fields, pair.customer.fields)


@dataclass
class SyncCounts:
    pairs: int = 0
    unchanged: int = 0
    quickbooks_writes: int = 0
    liscio_fills: int = 0
    attention: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: SyncCounts) -> None:
        self.pairs += other.pairs
        self.unchanged += other.unchanged
        self.quickbooks_writes += other.quickbooks_writes
        self.liscio_fills += other.liscio_fills
        self.attention += other.attention
        self.errors.extend(other.errors)

    def as_dict(self) -> dict[str, int]:
        return {
            "pairs": self.pairs,
            "unchanged": self.unchanged,
            "quickbooks_writes": self.quickbooks_writes,
            "liscio_fills": self.liscio_fills,
            "attention": self.attention,
            "errors": len(self.errors),
        }


def stable_id(*parts: object) -> str:
    """The same logical write always gets the same id (QuickBooks requestid, command_id),
    so a retry after a crash is recognised instead of applied twice."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:32]


@dataclass
class PairOutcome:
    """What became of one pair's plan. `failure`: its QuickBooks call failed for a reason
    other than the record itself (QuickBooks unavailable after retries, a bug); nothing was
    recorded for it and the caller decides what to do."""

    account_id: str
    counts: SyncCounts
    failure: Exception | None = None


async def apply_plan(
    tx: Repositories,
    quickbooks: CustomerGateway,
    pair: LinkedPair,
    plan: SyncPlan,
    *,
    reason: str,
    run_id: str | None = None,
    actor: str = "sync",
) -> SyncCounts:
    """Carry out `plan` for `pair` inside the caller's transaction, which holds the
    account's lock. A failed QuickBooks call (other than one about the record) is raised."""
    (outcome,) = await apply_plans(
        tx, quickbooks, [(pair, plan)], reason=reason, run_id=run_id, actor=actor
    )
    if outcome.failure is not None:
        raise outcome.failure
    return outcome.counts


async def apply_plans(
    tx: Repositories,
    quickbooks: CustomerGateway,
    planned: Sequence[tuple[LinkedPair, SyncPlan]],
    *,
    reason: str,
    run_id: str | None = None,
    actor: str = "sync",
) -> list[PairOutcome]:
    """Carry out the plans of many pairs inside the caller's transaction, which holds their
    accounts' locks. The QuickBooks calls run concurrently (the realm's limiter paces them:
    a realm's quota is used as fast as it allows); then what they returned is recorded for
    all pairs at once, a handful of statements however many pairs there are."""
    # Only the pairs that write get a call (a task each); the others' answer is None.
    calling = [i for i, (_, plan) in enumerate(planned) if plan.to_quickbooks]
    answers: list[dict[str, Any] | BaseException | None] = [None] * len(planned)
    called = await asyncio.gather(
        *(_write_to_quickbooks(quickbooks, *planned[i]) for i in calling),
        return_exceptions=True,
    )
    for i, answer in zip(calling, called, strict=True):
        answers[i] = answer
    outcomes: list[PairOutcome] = []
    records: list[CustomerRecord] = []
    messages: list[OutgoingMessage] = []
    now = datetime.now(UTC)  # one moment for the commands of one transaction
    entries: list[AuditEntry] = []
    first_synced: dict[str, list[str]] = {}
    written: Counter[tuple[str, str]] = Counter()  # (side, field): counted once per call
    for (pair, plan), answer in zip(planned, answers, strict=True):
        link = pair.link
        counts = SyncCounts(pairs=1)
        if isinstance(answer, BaseException):
            if isinstance(answer, RecordRefused):
                await tx.accounts.mark_for_attention(link.firm_id, link.account_id, str(answer))
                counts.attention = 1
                outcomes.append(PairOutcome(link.account_id, counts))
                continue
            if isinstance(answer, Exception):
                outcomes.append(PairOutcome(link.account_id, SyncCounts(), failure=answer))
                continue
            raise answer  # cancellation and the like: not ours to keep
        if not plan:
            counts.unchanged = 1
        if answer is not None:
            record = customer_record(link.realm_id, answer, source="write", firm_id=link.firm_id)
            records.append(record)
            messages.append((QBO_CUSTOMERS, f"{link.realm_id}:{link.customer_id}", record))
            counts.quickbooks_writes = 1
        to_liscio = plan.to_liscio
        if to_liscio:
            command = _fill_command(pair, to_liscio, now)
            messages.append((ACCOUNT_COMMANDS, f"{link.firm_id}:{link.account_id}", command))
            counts.liscio_fills = 1
        entries.extend(_audit_entries(pair, plan, reason, run_id, actor))
        written.update((write.side, write.field) for write in plan.writes)
        if link.first_synced_at is None:
            first_synced.setdefault(link.firm_id, []).append(link.account_id)
        outcomes.append(PairOutcome(link.account_id, counts))
    for (side, name), count in written.items():
        metrics.FIELDS_WRITTEN.labels(side, name).inc(count)
    if records:
        await tx.customers.store(records)
    if messages:
        await tx.outbox.enqueue(messages)
    await tx.audit.record(entries)
    for firm_id, account_ids in first_synced.items():
        await tx.links.mark_first_synced(firm_id, account_ids)
    return outcomes


async def _write_to_quickbooks(
    quickbooks: CustomerGateway, pair: LinkedPair, plan: SyncPlan
) -> dict[str, Any] | None:
    """The plan's sparse update (None when QuickBooks gets nothing), its requestid derived
    from what it writes over, so a retry after a crash is answered, not applied again."""
    if not plan.to_quickbooks:
        return None
    link, customer = pair.link, pair.customer
    changes = fields_to_qbo(plan.to_quickbooks)
    return await quickbooks.update_customer(
        link.realm_id,
        link.customer_id,
        customer.sync_token,
        changes,
        request_id=stable_id(
            "update", link.realm_id, link.customer_id, customer.sync_token, changes
        ),
    )


def _fill_command(
    pair: LinkedPair, to_liscio: dict[FieldName, FieldValue], issued_at: datetime
) -> str:
    link = pair.link
    fill = {name: to_json(value) for name, value in to_liscio.items()}
    command_id = stable_id("fill", link.firm_id, link.account_id, link.customer_id, fill)
    command = {
        "command_id": command_id,
        "type": "account.fill_fields",
        "firm_id": link.firm_id,
        "account_id": link.account_id,
        # in the fields' order, which AccountFields shares (any other order costs the model path)
        "fields": {name: fill[name] for name in FIELD_NAMES if name in fill},
        "source": {"realm_id": link.realm_id, "customer_id": link.customer_id},
        "issued_at": issued_at,
    }
    return message_json(AccountCommand, command).decode()


def audit_reason(context: str, rule: str) -> str:
    """Why a field was written: what ran (a Sync Now, a Liscio change) and the rule, said
    once when the rule already names it ("first sync: value only in QuickBooks")."""
    return rule if rule.startswith(f"{context}:") else f"{context}: {rule}"


def _audit_entries(
    pair: LinkedPair, plan: SyncPlan, reason: str, run_id: str | None, actor: str
) -> list[AuditEntry]:
    link = pair.link
    return [
        AuditEntry(
            firm_id=link.firm_id,
            action="field.written",
            reason=audit_reason(reason, write.reason),
            account_id=link.account_id,
            realm_id=link.realm_id,
            customer_id=link.customer_id,
            side=write.side,
            field=write.field,
            old_value=to_json(write.old),
            new_value=to_json(write.new),
            run_id=run_id,
            actor=actor,
        )
        for write in plan.writes
    ]


async def sync_account(
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    account_id: str,
    *,
    reason: str,
    run_id: str | None = None,
) -> SyncCounts:
    """Lock the account, read both sides afresh, apply the rules that are due."""
    async with uow.for_accounts(firm_id, [account_id], calls_quickbooks=True) as tx:
        pairs = await tx.pairs.load(firm_id, [account_id])
        if not pairs:
            return SyncCounts()
        pair = pairs[0]
        return await apply_plan(tx, quickbooks, pair, plan_for(pair), reason=reason, run_id=run_id)


async def sync_accounts(
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    account_ids: Sequence[str],
    *,
    reason: str,
    run_id: str | None = None,
    concurrency: int = 10,
    chunk: int = 500,
) -> SyncCounts:
    """Sync many linked accounts of one firm. Pairs with nothing to write are settled in
    bulk (one transaction per chunk); only pairs with writes get a transaction of their
    own, `concurrency` at a time (QuickBooks allows 10 requests in flight per realm)."""
    total = SyncCounts()
    busy: list[str] = []
    for start in range(0, len(account_ids), chunk):
        ids = account_ids[start : start + chunk]
        async with uow.for_accounts(firm_id, ids) as tx:
            pairs = await tx.pairs.load(firm_id, ids)
            settled = [p for p in pairs if not plan_for(p)]
            await tx.links.mark_first_synced(
                firm_id,
                [p.link.account_id for p in settled if p.link.first_synced_at is None],
            )
            total.pairs += len(settled)
            total.unchanged += len(settled)
            busy.extend(p.link.account_id for p in pairs if plan_for(p))

    gate = asyncio.Semaphore(concurrency)

    async def one(account_id: str) -> SyncCounts:
        async with gate:
            try:
                return await sync_account(
                    uow, quickbooks, firm_id, account_id, reason=reason, run_id=run_id
                )
            except Exception as exc:  # one pair's failure must not stop the others
                log.warning(
                    "sync of account failed",
                    extra={"firm_id": firm_id, "account_id": account_id, "error": str(exc)},
                )
                return SyncCounts(pairs=1, errors=[f"{account_id}: {exc}"])

    for result in await asyncio.gather(*(one(a) for a in busy)):
        total.add(result)
    return total
