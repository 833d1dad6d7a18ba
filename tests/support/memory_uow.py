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
from qbsync.db.links import AuditEntry, Link
from qbsync.db.pairs import LinkedPair
from qbsync.db.pending_creates import PendingCreate
from qbsync.db.runs import LEASE_SECONDS, STEPS, Run, Step
from qbsync.domain.fields import SyncedFields
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
    connections: dict[str, QuickBooksConnection] = field(default_factory=dict)
    cdc_marks: dict[str, datetime] = field(default_factory=dict)
    runs: dict[str, RunRow] = field(default_factory=dict)


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
                if row is None:
                    s.accounts[key] = AccountRow(stored, event.occurred_at)
                else:
                    row.account, row.occurred_at = stored, event.occurred_at

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
                if row.run.status in ("pending", "running"):
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
                if _claimable(row.steps[step]):
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
            links=_Links(access),
            locks=_Locks(access, taken),
            outbox=_Outbox(access),
            pairs=_Pairs(access),
            pending_creates=_PendingCreates(access),
            processed=_Processed(access),
            runs=_Runs(access),
        )
