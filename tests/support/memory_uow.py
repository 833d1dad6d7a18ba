"""An in-memory unit of work, so that `tests/unit` runs the use cases without PostgreSQL.

It keeps what the PostgreSQL repositories keep, with the same rules (a newer account event
or customer record wins, a link's account and customer are each linked once, a create's
request id survives an unfinished attempt). A transaction works on a copy of the state,
which replaces the state when the block ends and is dropped when it raises; transactions
take turns (one lock), which is at least as strict as the accounts' locks. Each use of
`direct` waits for the transaction under way; using it *inside* one is a mistake (in
PostgreSQL it would not see the transaction's writes) and raises.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from qbsync.db.accounts import StoredAccount, synced_fields_of
from qbsync.db.connections import QuickBooksConnection
from qbsync.db.customers import CustomerName, StoredCustomer
from qbsync.db.idempotency import IdempotencyClaim, StoredResponse
from qbsync.db.invoice_contacts import InvoiceContact
from qbsync.db.links import AuditEntry, AuditRecord, Link
from qbsync.db.liscio_creates import LiscioCreate
from qbsync.db.pairs import LinkedPair
from qbsync.db.pending_creates import PendingCreate
from qbsync.db.records import (
    SUGGESTIONS,
    AccountView,
    CustomerView,
    LinkView,
    RecordFilter,
    RecordItem,
    RecordKey,
    Suggestion,
)
from qbsync.db.runs import LEASE_SECONDS, STEPS, Run, Step
from qbsync.domain.fields import SyncedFields, to_json
from qbsync.domain.matching import Ambiguity, Named
from qbsync.sync import unit_of_work as seam
from qbsync.sync.unit_of_work import OutgoingMessage, Repositories, UnitOfWork
from schemas import AccountEvent, CustomerRecord


@dataclass
class AccountRow:
    account: StoredAccount
    occurred_at: datetime
    attention: str | None = None
    pushed_status: str | None = None
    contacts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CustomerRow:
    customer: StoredCustomer
    seen_run_id: str | None = None


@dataclass
class PendingRow:
    create: PendingCreate
    event_id: str
    reason: str | None = None


@dataclass
class StepRow:
    status: str = "pending"
    lease_until: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class RunRow:
    run: Run
    request_ids: list[str]
    requested_at: datetime
    steps: dict[str, StepRow] = field(default_factory=lambda: {s: StepRow() for s in STEPS})
    reason: str | None = None
    in_step_since: datetime | None = None  # when its last step finished (None: requested_at)


@dataclass
class State:
    accounts: dict[tuple[str, str], AccountRow] = field(default_factory=dict)
    customers: dict[tuple[str, str], CustomerRow] = field(default_factory=dict)
    links: dict[tuple[str, str], Link] = field(default_factory=dict)
    ambiguities: dict[str, list[tuple[Ambiguity, str | None]]] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    outbox: list[tuple[str, str, str]] = field(default_factory=list)
    processed: set[tuple[str, str]] = field(default_factory=set)
    pending: dict[tuple[str, str], PendingRow] = field(default_factory=dict)
    liscio_creates: dict[str, LiscioCreate] = field(default_factory=dict)  # by command id
    connections: dict[str, QuickBooksConnection] = field(default_factory=dict)
    cdc_marks: dict[str, datetime] = field(default_factory=dict)
    runs: dict[str, RunRow] = field(default_factory=dict)
    # (firm_id, key) -> (fingerprint, the first answer or None while it is served)
    idempotency: dict[tuple[str, str], tuple[str, StoredResponse | None]] = field(
        default_factory=dict
    )
    invoice_contacts: dict[tuple[str, str], InvoiceContact] = field(default_factory=dict)


@dataclass(frozen=True)
class Opened:
    """One transaction, as the tests see it afterwards."""

    locks: tuple[str, ...]  # "firm:account", in the order taken
    calls_quickbooks: bool
    committed: bool


Access = Callable[[], AbstractAsyncContextManager[State]]


class _Memory:
    __slots__ = ("_access",)

    def __init__(self, access: Access) -> None:
        self._access = access


class _Accounts(_Memory, seam.Accounts):
    async def store(self, events: Sequence[AccountEvent]) -> None:
        async with self._access() as s:
            for event in {(e.firm_id, e.account.id): e for e in events}.values():
                key = (event.firm_id, event.account.id)
                row = s.accounts.get(key)
                if row is not None and row.occurred_at > event.occurred_at:
                    continue
                stored = StoredAccount(
                    event.firm_id,
                    event.account.id,
                    event.account.name,
                    event.account.status,
                    event.type == "account.archived",
                    synced_fields_of(event),
                )
                contacts = [c.model_dump() for c in event.account.contacts]
                if row is None:
                    s.accounts[key] = AccountRow(stored, event.occurred_at, contacts=contacts)
                else:
                    row.account, row.occurred_at = stored, event.occurred_at
                    row.contacts = contacts

    async def get(self, firm_id: str, account_id: str) -> StoredAccount | None:
        async with self._access() as s:
            row = s.accounts.get((firm_id, account_id))
            return row.account if row else None

    async def unlinked_names(self, firm_id: str) -> list[Named]:
        async with self._access() as s:
            return [
                Named(a.account.account_id, a.account.name)
                for (firm, account_id), a in sorted(s.accounts.items())
                if firm == firm_id and not a.account.archived and (firm, account_id) not in s.links
            ]

    async def linked_ids(self, firm_id: str) -> list[str]:
        async with self._access() as s:
            return sorted(a for f, a in s.links if f == firm_id)

    async def awaiting_first_sync(self, firm_id: str) -> list[str]:
        async with self._access() as s:
            return sorted(
                a for (f, a), link in s.links.items() if f == firm_id and not link.first_synced_at
            )

    async def mark_for_attention(self, firm_id: str, account_id: str, reason: str | None) -> None:
        async with self._access() as s:
            if (row := s.accounts.get((firm_id, account_id))) is not None:
                row.attention = reason

    async def status_last_pushed(self, firm_id: str, account_id: str) -> str | None:
        async with self._access() as s:
            row = s.accounts.get((firm_id, account_id))
            return row.pushed_status if row else None

    async def record_pushed_statuses(
        self, firm_id: str, statuses: Mapping[str, str | None]
    ) -> None:
        async with self._access() as s:
            for account_id, status in statuses.items():
                if (row := s.accounts.get((firm_id, account_id))) is not None:
                    row.pushed_status = status


def _stored_customer(record: CustomerRecord) -> StoredCustomer:
    address = record.address.model_dump(mode="json") if record.address else None
    return StoredCustomer(
        record.realm_id,
        record.customer_id,
        record.display_name,
        record.active and not record.deleted,
        record.deleted,
        record.parent_id,
        record.sync_token,
        SyncedFields.parse(address, record.phone, record.website),
    )


def _newer(record: CustomerRecord, stored: StoredCustomer) -> bool:
    if record.sync_token is None or stored.sync_token is None:
        return True
    return int(record.sync_token) >= int(stored.sync_token)


class _Customers(_Memory, seam.Customers):
    async def store(self, records: Sequence[CustomerRecord]) -> None:
        async with self._access() as s:
            for record in records:  # one after another, as the repository stores them
                key = (record.realm_id, record.customer_id)
                row = s.customers.get(key)
                fresh = _stored_customer(record)
                if row is None:
                    s.customers[key] = CustomerRow(fresh, record.run_id)
                    continue
                old = row.customer
                if not _newer(record, old):
                    fresh = replace(old, deleted=old.deleted or record.deleted)
                elif record.deleted:  # a tombstone keeps the last values it had
                    fresh = replace(old, active=fresh.active, deleted=True)
                else:
                    fresh = replace(
                        fresh, sync_token=fresh.sync_token or old.sync_token, deleted=old.deleted
                    )
                row.customer = fresh
                row.seen_run_id = record.run_id or row.seen_run_id

    async def get(self, realm_id: str, customer_id: str) -> StoredCustomer | None:
        async with self._access() as s:
            row = s.customers.get((realm_id, customer_id))
            return row.customer if row else None

    async def count_seen_in_run(self, realm_id: str, run_id: str) -> int:
        async with self._access() as s:
            return sum(
                1
                for (r, _), row in s.customers.items()
                if r == realm_id and row.seen_run_id == run_id
            )

    async def unlinked_names(self, realm_id: str) -> list[CustomerName]:
        async with self._access() as s:
            linked = {(link.realm_id, link.customer_id) for link in s.links.values()}
            return [
                CustomerName(c.customer_id, c.display_name, c.active, c.deleted, c.parent_id)
                for key, row in sorted(s.customers.items())
                if key[0] == realm_id and key not in linked
                for c in [row.customer]
            ]


class _Links(_Memory, seam.Links):
    async def insert(
        self,
        firm_id: str,
        realm_id: str,
        pairs: Sequence[tuple[str, str]],
        how: str,
        first_synced: Sequence[bool] | None = None,
    ) -> list[Link]:
        flags = list(first_synced) if first_synced is not None else [False] * len(pairs)
        now = datetime.now(UTC)
        made: list[Link] = []
        async with self._access() as s:
            customers = {(link.realm_id, link.customer_id) for link in s.links.values()}
            for (account_id, customer_id), synced in zip(pairs, flags, strict=True):
                if (firm_id, account_id) in s.links or (realm_id, customer_id) in customers:
                    continue
                link = Link(
                    firm_id, account_id, realm_id, customer_id, how, now, now if synced else None
                )
                s.links[(firm_id, account_id)] = link
                customers.add((realm_id, customer_id))
                made.append(link)
        return made

    async def delete(self, firm_id: str, account_id: str) -> Link | None:
        async with self._access() as s:
            return s.links.pop((firm_id, account_id), None)

    async def of_account(self, firm_id: str, account_id: str) -> Link | None:
        async with self._access() as s:
            return s.links.get((firm_id, account_id))

    async def of_customers(self, realm_id: str, customer_ids: Sequence[str]) -> list[Link]:
        wanted = set(customer_ids)
        async with self._access() as s:
            return [
                link
                for link in s.links.values()
                if link.realm_id == realm_id and link.customer_id in wanted
            ]

    async def mark_first_synced(self, firm_id: str, account_ids: Sequence[str]) -> None:
        now = datetime.now(UTC)
        async with self._access() as s:
            for account_id in set(account_ids):
                link = s.links.get((firm_id, account_id))
                if link is not None and link.first_synced_at is None:
                    s.links[(firm_id, account_id)] = replace(link, first_synced_at=now)

    async def replace_ambiguities(
        self, firm_id: str, found: Sequence[Ambiguity], run_id: str | None
    ) -> None:
        async with self._access() as s:
            s.ambiguities[firm_id] = [(a, run_id) for a in found]


class _Pairs(_Memory, seam.Pairs):
    async def load(
        self, firm_id: str, account_ids: Sequence[str] | None = None
    ) -> list[LinkedPair]:
        async with self._access() as s:
            ids = (
                sorted(set(account_ids))
                if account_ids is not None
                else sorted(a for f, a in s.links if f == firm_id)
            )
            pairs = []
            for account_id in ids:
                link = s.links.get((firm_id, account_id))
                if link is None:
                    continue
                account = s.accounts.get((firm_id, account_id))
                customer = s.customers.get((link.realm_id, link.customer_id))
                if account is not None and customer is not None:
                    pairs.append(LinkedPair(link, account.account, customer.customer))
            return pairs

    async def sides(
        self, firm_id: str, realm_id: str, pairs: Sequence[tuple[str, str]]
    ) -> dict[str, tuple[StoredAccount, StoredCustomer]]:
        async with self._access() as s:
            found = {}
            for account_id, customer_id in pairs:
                account = s.accounts.get((firm_id, account_id))
                customer = s.customers.get((realm_id, customer_id))
                if account is not None and customer is not None:
                    found[account_id] = (account.account, customer.customer)
            return found


class _AuditLog(_Memory, seam.AuditLog):
    async def record(self, entries: Sequence[AuditEntry]) -> None:
        async with self._access() as s:
            s.audit.extend(copy.copy(e) for e in entries)

    async def ever_linked(self, firm_id: str, account_id: str) -> bool:
        async with self._access() as s:
            return any(
                e.firm_id == firm_id and e.account_id == account_id and e.action == "link.created"
                for e in s.audit
            )

    async def page(
        self, firm_id: str, account_id: str | None, before_id: int | None, limit: int
    ) -> list[AuditRecord]:
        async with self._access() as s:
            # An entry's id is its place in the log (from 1), as a bigserial would number it.
            found = [
                AuditRecord(
                    number,
                    _RECORDED_AT,
                    e.action,
                    e.account_id,
                    e.customer_id,
                    e.side,
                    e.field,
                    e.old_value,
                    e.new_value,
                    e.reason,
                    e.actor,
                )
                for number, e in enumerate(s.audit, start=1)
                if e.firm_id == firm_id
                and (account_id is None or e.account_id == account_id)
                and (before_id is None or number < before_id)
            ]
            return list(reversed(found))[:limit]


_RECORDED_AT = datetime(2026, 1, 1, tzinfo=UTC)


class _Outbox(_Memory, seam.Outbox):
    async def enqueue(self, messages: Sequence[OutgoingMessage]) -> None:
        async with self._access() as s:
            s.outbox.extend(
                (topic, key, v if isinstance(v, str) else v.model_dump_json(exclude_unset=True))
                for topic, key, v in messages
            )


class _Processed(_Memory, seam.Processed):
    async def among(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        async with self._access() as s:
            return {m for m in message_ids if (consumer, m) in s.processed}

    async def mark(self, consumer: str, message_ids: Sequence[str]) -> None:
        async with self._access() as s:
            s.processed.update((consumer, m) for m in message_ids)


class _PendingCreates(_Memory, seam.PendingCreates):
    async def begin(
        self, firm_id: str, account_id: str, request_id: str, event_id: str
    ) -> PendingCreate:
        async with self._access() as s:
            earlier = s.pending.get((firm_id, account_id))
            if earlier is None:
                create = PendingCreate(firm_id, account_id, request_id, "pending", None)
            else:
                was = earlier.create
                create = PendingCreate(
                    firm_id,
                    account_id,
                    was.request_id if was.state == "pending" else request_id,
                    "done" if was.state == "done" else "pending",
                    was.customer_id,
                    retry=was.state == "pending",
                )
            s.pending[(firm_id, account_id)] = PendingRow(replace(create, retry=False), event_id)
            return create

    async def finish(
        self, firm_id: str, account_id: str, *, customer_id: str | None, failure: str | None = None
    ) -> None:
        async with self._access() as s:
            row = s.pending.get((firm_id, account_id))
            if row is not None:
                state = "failed" if failure else "done"
                row.create = replace(row.create, state=state, customer_id=customer_id)
                row.reason = failure

    async def unfinished(self) -> list[PendingCreate]:
        async with self._access() as s:
            return [
                replace(row.create, retry=True)
                for row in s.pending.values()
                if row.create.state == "pending"
            ]


class _LiscioCreates(_Memory, seam.LiscioCreates):
    async def begin(
        self,
        firm_id: str,
        realm_id: str,
        customer_id: str,
        command_id: str,
        actor: str,
        retrying: LiscioCreate | None = None,
    ) -> tuple[LiscioCreate, bool]:
        async with self._access() as s:
            for waiting in s.liscio_creates.values():
                if (waiting.realm_id, waiting.customer_id, waiting.state) == (
                    realm_id,
                    customer_id,
                    "pending",
                ):
                    return waiting, False
            if command_id in s.liscio_creates:
                return s.liscio_creates[command_id], False
            create = LiscioCreate(
                command_id,
                firm_id,
                realm_id,
                customer_id,
                actor,
                "pending",
                asked_at=datetime.now(UTC),
                retry_of=(retrying.retry_of or retrying.command_id) if retrying else None,
                attempt=retrying.attempt + 1 if retrying else 1,
            )
            s.liscio_creates[command_id] = create
            return create, True

    async def of_command(self, command_id: str) -> LiscioCreate | None:
        async with self._access() as s:
            return s.liscio_creates.get(command_id)

    async def finish(
        self, command_id: str, *, account_id: str | None, failure: str | None = None
    ) -> None:
        async with self._access() as s:
            if (create := s.liscio_creates.get(command_id)) is not None:
                state = "failed" if failure else "done"
                s.liscio_creates[command_id] = replace(create, state=state, account_id=account_id)

    async def awaiting(self, realm_id: str) -> set[str]:
        async with self._access() as s:
            return {
                c.customer_id
                for c in s.liscio_creates.values()
                if c.realm_id == realm_id and c.state == "pending"
            }

    async def waiting(self, realm_id: str, customer_ids: Sequence[str]) -> dict[str, LiscioCreate]:
        async with self._access() as s:
            return {
                c.customer_id: c
                for c in s.liscio_creates.values()
                if c.realm_id == realm_id and c.customer_id in customer_ids and c.state == "pending"
            }

    async def expire(self, command_id: str) -> None:
        async with self._access() as s:
            create = s.liscio_creates.get(command_id)
            if create is not None and create.state == "pending":
                s.liscio_creates[command_id] = replace(create, state="expired")


class _Connections(_Memory, seam.Connections):
    async def of_firm(self, firm_id: str) -> QuickBooksConnection | None:
        async with self._access() as s:
            return s.connections.get(firm_id)

    async def of_realm(self, realm_id: str) -> QuickBooksConnection | None:
        async with self._access() as s:
            return next((c for c in s.connections.values() if c.realm_id == realm_id), None)

    async def count_needing_reconnect(self) -> int:
        async with self._access() as s:
            return sum(1 for c in s.connections.values() if c.status == "needs_reconnect")

    async def connected_realms(self) -> list[tuple[str, str]]:
        async with self._access() as s:
            return [(c.firm_id, c.realm_id) for c in s.connections.values() if c.usable]

    async def remove(self, firm_id: str) -> bool:
        async with self._access() as s:
            return s.connections.pop(firm_id, None) is not None


def _claimable(step: StepRow) -> bool:
    return step.status == "pending" or (
        step.status == "running" and step.lease_until < time.monotonic()
    )


def _lease(step: StepRow) -> None:
    step.status, step.lease_until = "running", time.monotonic() + LEASE_SECONDS


class _Runs(_Memory, seam.Runs):
    async def open_or_join(
        self, firm_id: str, request_id: str, kind: str, requested_at: datetime
    ) -> tuple[Run, bool]:
        async with self._access() as s:
            mine = [r for r in s.runs.values() if r.run.firm_id == firm_id]
            for row in mine:
                if request_id in row.request_ids:
                    return row.run, False
            for row in mine:
                if row.run.status == "pending":
                    row.request_ids.append(request_id)
                    return row.run, False
            run = Run(str(uuid.uuid4()), firm_id, None, kind, "pending")
            s.runs[run.run_id] = RunRow(run, [request_id], requested_at)
            return run, True

    async def claim_next(self, step: Step) -> Run | None:
        async with self._access() as s:
            open_runs = sorted(
                (r for r in s.runs.values() if r.run.status in ("pending", "running")),
                key=lambda r: r.requested_at,
            )
            for row in open_runs:
                earlier = [
                    other
                    for other in open_runs
                    if other.run.firm_id == row.run.firm_id
                    and other.requested_at < row.requested_at
                ]
                if _claimable(row.steps[step]) and not earlier:
                    _lease(row.steps[step])
                    row.run = replace(row.run, status="running")
                    return row.run
            return None

    async def open_step_ages(self) -> dict[Step, float]:
        ages: dict[Step, float] = {}
        now = datetime.now(UTC)
        async with self._access() as s:
            for row in s.runs.values():
                if row.run.status not in ("pending", "running"):
                    continue
                step = next(name for name in STEPS if row.steps[name].status != "done")
                age = (now - (row.in_step_since or row.requested_at)).total_seconds()
                ages[step] = max(age, ages.get(step, 0.0))
        return ages

    async def waiting_for(self, step: Step, after: Step) -> list[tuple[Run, dict[str, Any]]]:
        async with self._access() as s:
            return [
                (row.run, dict(row.steps[after].counts))
                for row in s.runs.values()
                if row.run.status == "running"
                and row.steps[after].status == "done"
                and _claimable(row.steps[step])
            ]

    async def claim(self, run_id: str, step: Step) -> bool:
        async with self._access() as s:
            found = s.runs[run_id].steps[step]
            if not _claimable(found):
                return False
            _lease(found)
            return True

    async def renew_lease(self, run_id: str, step: Step) -> None:
        async with self._access() as s:
            found = s.runs[run_id].steps[step]
            if found.status == "running":
                _lease(found)

    async def set_realm(self, run_id: str, realm_id: str) -> None:
        async with self._access() as s:
            row = s.runs[run_id]
            row.run = replace(row.run, realm_id=realm_id)

    async def report(self, run_id: str) -> dict[str, Any] | None:
        async with self._access() as s:
            row = s.runs.get(run_id)
            if row is None:
                return None
            return {
                "run_id": row.run.run_id,
                "firm_id": row.run.firm_id,
                "realm_id": row.run.realm_id,
                "kind": row.run.kind,
                "status": row.run.status,
                "reason": row.reason,
                "requested_at": row.requested_at,
                "finished_at": None,
                "steps": {
                    step: {
                        "status": row.steps[step].status,
                        "counts": dict(row.steps[step].counts),
                        "reason": row.steps[step].reason,
                    }
                    for step in STEPS
                },
            }

    async def latest_of_firm(self, firm_id: str) -> str | None:
        async with self._access() as s:
            mine = [r for r in s.runs.values() if r.run.firm_id == firm_id]
            return max(mine, key=lambda r: r.requested_at).run.run_id if mine else None

    async def finish_step(
        self, run_id: str, step: Step, counts: dict[str, int], *, failure: str | None = None
    ) -> None:
        async with self._access() as s:
            row = s.runs[run_id]
            row.steps[step] = StepRow("failed" if failure else "done", 0.0, dict(counts), failure)
            row.in_step_since = datetime.now(UTC)
            if failure:
                row.run, row.reason = replace(row.run, status="failed"), f"{step}: {failure}"
            elif step == STEPS[-1]:
                row.run = replace(row.run, status="done")


class _CdcMarks(_Memory, seam.CdcMarks):
    def __init__(self, access: Access, polled_elsewhere: set[str]) -> None:
        super().__init__(access)
        self._elsewhere = polled_elsewhere

    async def claim(self, realm_id: str) -> bool:
        return realm_id not in self._elsewhere

    async def get(self, realm_id: str) -> datetime | None:
        async with self._access() as s:
            return s.cdc_marks.get(realm_id)

    async def set(self, realm_id: str, changed_since: datetime) -> None:
        async with self._access() as s:
            s.cdc_marks[realm_id] = changed_since


class _Locks(_Memory, seam.Locks):
    def __init__(self, access: Access, taken: list[str]) -> None:
        super().__init__(access)
        self._taken = taken

    async def accounts(self, firm_id: str, account_ids: Sequence[str]) -> None:
        self._taken.extend(f"{firm_id}:{a}" for a in sorted(set(account_ids)))


class _Firms(_Memory, seam.Firms):
    async def exists(self, firm_id: str) -> bool:
        async with self._access() as s:
            return firm_id in s.connections or any(f == firm_id for f, _ in s.accounts)


class _Idempotency(_Memory, seam.Idempotency):
    # Keys never expire here: a unit test lasts less than 24 hours.
    async def claim(self, firm_id: str, key: str, fingerprint: str) -> IdempotencyClaim:
        async with self._access() as s:
            found = s.idempotency.get((firm_id, key))
            if found is None:
                s.idempotency[(firm_id, key)] = (fingerprint, None)
                return IdempotencyClaim("new")
            if found[0] != fingerprint:
                return IdempotencyClaim("mismatch")
            if found[1] is None:
                return IdempotencyClaim("in_progress")
            return IdempotencyClaim("replay", found[1])

    async def complete(self, firm_id: str, key: str, response: StoredResponse) -> None:
        async with self._access() as s:
            fingerprint, _ = s.idempotency[(firm_id, key)]
            s.idempotency[(firm_id, key)] = (fingerprint, response)

    async def release(self, firm_id: str, key: str) -> None:
        async with self._access() as s:
            found = s.idempotency.get((firm_id, key))
            if found is not None and found[1] is None:
                del s.idempotency[(firm_id, key)]


class _InvoiceContacts(_Memory, seam.InvoiceContacts):
    async def record(self, made: InvoiceContact) -> None:
        async with self._access() as s:
            s.invoice_contacts.setdefault((made.realm_id, made.invoice_id), made)

    async def names(self, realm_id: str, invoice_ids: Sequence[str]) -> dict[str, str | None]:
        async with self._access() as s:
            return {
                invoice_id: made.contact_name
                for invoice_id in invoice_ids
                if (made := s.invoice_contacts.get((realm_id, invoice_id))) is not None
            }


def _trigrams(text: str) -> set[str]:
    """pg_trgm's trigrams: of each word (runs of letters and digits), lower-cased and
    padded with two spaces before and one after."""
    found: set[str] = set()
    for word in "".join(ch if ch.isalnum() else " " for ch in text.lower()).split():
        padded = f"  {word} "
        found.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return found


def similarity(a: str, b: str) -> float:
    """pg_trgm's similarity(a, b): shared trigrams over all trigrams of both."""
    ta, tb = _trigrams(a), _trigrams(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


SIMILARITY_THRESHOLD = 0.3  # pg_trgm.similarity_threshold's default, which `%` applies


class _Records(_Memory, seam.Records):
    """The rules of qbsync/db/records.py, over the in-memory state."""

    async def realm_of(self, firm_id: str) -> str | None:
        async with self._access() as s:
            return self._realm(s, firm_id)

    @staticmethod
    def _realm(s: State, firm_id: str) -> str | None:
        if firm_id in s.connections:
            return s.connections[firm_id].realm_id
        for link in s.links.values():
            if link.firm_id == firm_id:
                return link.realm_id
        runs = [r for r in s.runs.values() if r.run.firm_id == firm_id and r.run.realm_id]
        return max(runs, key=lambda r: r.requested_at).run.realm_id if runs else None

    async def page(
        self,
        firm_id: str,
        realm_id: str | None,
        record_filter: RecordFilter,
        q: str | None,
        after: RecordKey | None,
        limit: int,
    ) -> list[RecordItem]:
        async with self._access() as s:
            items = self._listed(s, firm_id, realm_id, record_filter)
        wanted = q.casefold() if q else None
        if wanted is not None:
            items = [
                i
                for i in items
                if (i.account is not None and wanted in i.account.name.casefold())
                or (i.customer is not None and wanted in i.customer.display_name.casefold())
            ]
        items.sort(key=lambda i: i.key)
        return [i for i in items if after is None or i.key > after][:limit]

    async def counts(self, firm_id: str, realm_id: str | None) -> dict[str, int]:
        async with self._access() as s:
            return {
                f: len(self._listed(s, firm_id, realm_id, f))
                for f in (
                    "linked",
                    "unlinked_accounts",
                    "unlinked_customers",
                    "ambiguous",
                    "attention",
                )
            }

    def _listed(
        self, s: State, firm_id: str, realm_id: str | None, record_filter: RecordFilter
    ) -> list[RecordItem]:
        links = list(s.links.values())
        linked_accounts = {k.account_id: k for k in links if k.firm_id == firm_id}
        linked_customers = {(k.realm_id, k.customer_id) for k in links}
        pairs, accounts, customers = [], [], []
        for (f, account_id), row in s.accounts.items():
            if f != firm_id or row.account.archived:
                continue
            link = linked_accounts.get(account_id)
            if link is None:
                accounts.append(row)
                continue
            customer = s.customers.get((link.realm_id, link.customer_id))
            if customer and customer.customer.active and not customer.customer.deleted:
                pairs.append((row, customer, link))
        for (r, customer_id), crow in s.customers.items():
            c = crow.customer
            if (
                r == realm_id
                and c.active
                and not c.deleted
                and (r, customer_id) not in linked_customers
            ):
                customers.append(crow)
        ambiguous: set[str] = set()
        names_a: dict[str, int] = {}
        names_c: dict[str, int] = {}
        for row in accounts:
            names_a[row.account.name.casefold()] = names_a.get(row.account.name.casefold(), 0) + 1
        for crow in customers:
            if crow.customer.parent_id is None:
                folded = crow.customer.display_name.casefold()
                names_c[folded] = names_c.get(folded, 0) + 1
        for folded, n in names_a.items():
            if folded in names_c and (n > 1 or names_c[folded] > 1):
                ambiguous.add(folded)
        pair_items = [_pair_item(a, c, link) for a, c, link in pairs]
        account_items = [_account_item(a) for a in accounts]
        customer_items = [_customer_item(c) for c in customers]
        if record_filter == "linked":
            return pair_items
        if record_filter == "unlinked_accounts":
            return account_items
        if record_filter == "unlinked_customers":
            return customer_items
        if record_filter == "ambiguous":
            return [i for i in account_items if i.key.folded in ambiguous] + [
                i
                for i in customer_items
                if i.key.folded in ambiguous
                and i.customer is not None
                and i.customer.parent_id is None
            ]
        if record_filter == "attention":
            return [i for i in pair_items + account_items if i.attention is not None]
        return pair_items + account_items + customer_items

    async def account(self, firm_id: str, account_id: str) -> AccountView | None:
        async with self._access() as s:
            row = s.accounts.get((firm_id, account_id))
            return _account_view(row) if row else None

    async def customer(self, realm_id: str, customer_id: str) -> CustomerView | None:
        async with self._access() as s:
            row = s.customers.get((realm_id, customer_id))
            return _customer_view(row) if row and not row.customer.deleted else None

    async def suggest_customers(
        self, firm_id: str, realm_id: str, folded_name: str
    ) -> list[Suggestion]:
        async with self._access() as s:
            candidates = [
                i.customer
                for i in self._listed(s, firm_id, realm_id, "unlinked_customers")
                if i.customer is not None and i.customer.parent_id is None
            ]
        scored = [(similarity(c.display_name.casefold(), folded_name), c) for c in candidates]
        ranked = sorted(
            ((score, c) for score, c in scored if score >= SIMILARITY_THRESHOLD and score > 0),
            key=lambda sc: (-sc[0], sc[1].id),
        )
        return [Suggestion(score, customer=c) for score, c in ranked[:SUGGESTIONS]]

    async def suggest_accounts(self, firm_id: str, folded_name: str) -> list[Suggestion]:
        async with self._access() as s:
            candidates = [
                i.account
                for i in self._listed(s, firm_id, None, "unlinked_accounts")
                if i.account is not None
            ]
        scored = [(similarity(a.name.casefold(), folded_name), a) for a in candidates]
        ranked = sorted(
            ((score, a) for score, a in scored if score >= SIMILARITY_THRESHOLD and score > 0),
            key=lambda sa: (-sa[0], sa[1].id),
        )
        return [Suggestion(score, account=a) for score, a in ranked[:SUGGESTIONS]]


def _account_view(row: AccountRow) -> AccountView:
    a = row.account
    f = a.fields
    return AccountView(
        a.account_id,
        a.name,
        a.status,
        a.archived,
        to_json(f.address) if f.address else None,
        f.phone,
        f.website,
        list(row.contacts),
    )


def _customer_view(row: CustomerRow) -> CustomerView:
    c = row.customer
    f = c.fields
    return CustomerView(
        c.customer_id,
        c.realm_id,
        c.display_name,
        c.active,
        c.parent_id,
        to_json(f.address) if f.address else None,
        f.phone,
        f.website,
    )


def _pair_item(account: AccountRow, customer: CustomerRow, link: Link) -> RecordItem:
    return RecordItem(
        RecordKey(account.account.name.casefold(), link.account_id, link.customer_id),
        _account_view(account),
        _customer_view(customer),
        LinkView(link.account_id, link.customer_id, link.realm_id, link.how, link.linked_at),
        account.attention,
    )


def _account_item(account: AccountRow) -> RecordItem:
    a = account.account
    return RecordItem(
        RecordKey(a.name.casefold(), a.account_id, ""),
        _account_view(account),
        None,
        None,
        account.attention,
    )


def _customer_item(customer: CustomerRow) -> RecordItem:
    c = customer.customer
    return RecordItem(
        RecordKey(c.display_name.casefold(), "", c.customer_id),
        None,
        _customer_view(customer),
        None,
        None,
    )


class MemoryUnitOfWork(UnitOfWork):
    def __init__(self) -> None:
        self.state = State()
        self.opened: list[Opened] = []  # every transaction, in the order they ended
        self.polled_elsewhere: set[str] = set()  # realms whose CDC poll another process holds
        self._turn = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._direct = self._repositories(self._shared, [])

    # -- set-up, as the adapters outside the use cases would have left things ------------
    def connect(self, firm_id: str, realm_id: str, status: str = "connected") -> None:
        self.state.connections[firm_id] = QuickBooksConnection(firm_id, realm_id, status, None)

    def messages(self, topic: str) -> list[tuple[str, str]]:
        """(key, JSON value) of what the outbox holds for the topic."""
        return [(key, value) for t, key, value in self.state.outbox if t == topic]

    # -- the unit of work ---------------------------------------------------------------
    @property
    def direct(self) -> Repositories:
        return self._direct

    @asynccontextmanager
    async def for_accounts(
        self, firm_id: str, account_ids: Sequence[str], *, calls_quickbooks: bool = False
    ) -> AsyncIterator[Repositories]:
        async with self.begin(calls_quickbooks=calls_quickbooks) as tx:
            await tx.locks.accounts(firm_id, account_ids)
            yield tx

    @asynccontextmanager
    async def begin(self, *, calls_quickbooks: bool = False) -> AsyncIterator[Repositories]:
        self._refuse_nesting("a transaction inside a transaction")
        async with self._turn:
            self._holder = asyncio.current_task()
            working = copy.deepcopy(self.state)
            taken: list[str] = []

            @asynccontextmanager
            async def private() -> AsyncIterator[State]:
                yield working

            committed = False
            try:
                yield self._repositories(private, taken)
                self.state = working
                committed = True
            finally:
                self._holder = None
                self.opened.append(Opened(tuple(taken), calls_quickbooks, committed))

    @asynccontextmanager
    async def _shared(self) -> AsyncIterator[State]:
        self._refuse_nesting("uow.direct inside a transaction")
        async with self._turn:
            yield self.state

    def _refuse_nesting(self, what: str) -> None:
        if self._holder is not None and self._holder is asyncio.current_task():
            raise AssertionError(f"{what}: PostgreSQL would not see the transaction's writes")

    def _repositories(self, access: Access, taken: list[str]) -> Repositories:
        return Repositories(
            accounts=_Accounts(access),
            audit=_AuditLog(access),
            cdc_marks=_CdcMarks(access, self.polled_elsewhere),
            connections=_Connections(access),
            customers=_Customers(access),
            firms=_Firms(access),
            idempotency=_Idempotency(access),
            invoice_contacts=_InvoiceContacts(access),
            links=_Links(access),
            liscio_creates=_LiscioCreates(access),
            locks=_Locks(access, taken),
            outbox=_Outbox(access),
            pairs=_Pairs(access),
            pending_creates=_PendingCreates(access),
            processed=_Processed(access),
            records=_Records(access),
            runs=_Runs(access),
        )
