"""The unit of work on PostgreSQL (the seam is qbsync/sync/unit_of_work.py): a pool
connection, its transaction, the accounts' advisory locks and the repositories bound to
that connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from qbsync.db import (
    accounts,
    cdc_marks,
    connections,
    customers,
    firms,
    idempotency,
    invoice_contacts,
    links,
    liscio_creates,
    outbox,
    pairs,
    pending_creates,
    processed,
    records,
    runs,
)
from qbsync.db.accounts import StoredAccount
from qbsync.db.connections import QuickBooksConnection
from qbsync.db.customers import CustomerName, StoredCustomer
from qbsync.db.idempotency import IdempotencyClaim, StoredResponse
from qbsync.db.invoice_contacts import InvoiceContact
from qbsync.db.links import AuditEntry, AuditRecord, Link
from qbsync.db.liscio_creates import LiscioCreate
from qbsync.db.locks import lock_accounts
from qbsync.db.pairs import LinkedPair
from qbsync.db.pending_creates import PendingCreate
from qbsync.db.pool import Db, Pool
from qbsync.db.records import (
    AccountView,
    CustomerView,
    RecordFilter,
    RecordItem,
    RecordKey,
    Suggestion,
)
from qbsync.db.runs import Run, Step
from qbsync.domain.matching import Ambiguity, Named
from qbsync.sync import unit_of_work as seam
from qbsync.sync.unit_of_work import OutgoingMessage, Repositories, UnitOfWork
from schemas import AccountEvent, CustomerRecord

# A transaction that calls QuickBooks holds its connection while the call waits for the
# realm's limiter and for QuickBooks, and the call may itself need a connection (the token
# store reading or refreshing the realm's access token). If such transactions held every
# connection of the pool, that call would wait for itself forever; so they may hold all
# but RESERVED_CONNECTIONS of it.
RESERVED_CONNECTIONS = 4


class _Bound:
    __slots__ = ("_db",)

    def __init__(self, db: Db) -> None:
        self._db = db


class _Accounts(_Bound, seam.Accounts):
    async def store(self, events: Sequence[AccountEvent]) -> None:
        await accounts.store_accounts(self._db, events)

    async def get(self, firm_id: str, account_id: str) -> StoredAccount | None:
        return await accounts.get_account(self._db, firm_id, account_id)

    async def unlinked_names(self, firm_id: str) -> list[Named]:
        return await accounts.unlinked_account_names(self._db, firm_id)

    async def linked_ids(self, firm_id: str) -> list[str]:
        return await accounts.linked_account_ids(self._db, firm_id)

    async def awaiting_first_sync(self, firm_id: str) -> list[str]:
        return await accounts.accounts_awaiting_first_sync(self._db, firm_id)

    async def mark_for_attention(self, firm_id: str, account_id: str, reason: str | None) -> None:
        await accounts.mark_for_attention(self._db, firm_id, account_id, reason)

    async def status_last_pushed(self, firm_id: str, account_id: str) -> str | None:
        return await accounts.status_last_pushed(self._db, firm_id, account_id)

    async def record_pushed_statuses(
        self, firm_id: str, statuses: Mapping[str, str | None]
    ) -> None:
        await accounts.record_pushed_statuses(self._db, firm_id, statuses)


class _Customers(_Bound, seam.Customers):
    async def store(self, records: Sequence[CustomerRecord]) -> None:
        await customers.store_customers(self._db, records)

    async def get(self, realm_id: str, customer_id: str) -> StoredCustomer | None:
        return await customers.get_customer(self._db, realm_id, customer_id)

    async def unlinked_names(self, realm_id: str) -> list[CustomerName]:
        return await customers.unlinked_customer_names(self._db, realm_id)

    async def count_seen_in_run(self, realm_id: str, run_id: str) -> int:
        return await customers.count_seen_in_run(self._db, realm_id, run_id)


class _Links(_Bound, seam.Links):
    async def insert(
        self,
        firm_id: str,
        realm_id: str,
        pairs: Sequence[tuple[str, str]],
        how: str,
        first_synced: Sequence[bool] | None = None,
    ) -> list[Link]:
        return await links.insert_links(self._db, firm_id, realm_id, pairs, how, first_synced)

    async def delete(self, firm_id: str, account_id: str) -> Link | None:
        return await links.delete_link(self._db, firm_id, account_id)

    async def of_account(self, firm_id: str, account_id: str) -> Link | None:
        return await links.link_of_account(self._db, firm_id, account_id)

    async def of_customers(self, realm_id: str, customer_ids: Sequence[str]) -> list[Link]:
        return await links.links_of_customers(self._db, realm_id, customer_ids)

    async def mark_first_synced(self, firm_id: str, account_ids: Sequence[str]) -> None:
        await links.mark_first_synced(self._db, firm_id, account_ids)

    async def replace_ambiguities(
        self, firm_id: str, found: Sequence[Ambiguity], run_id: str | None
    ) -> None:
        await links.replace_ambiguities(self._db, firm_id, found, run_id)


class _Pairs(_Bound, seam.Pairs):
    async def load(
        self, firm_id: str, account_ids: Sequence[str] | None = None
    ) -> list[LinkedPair]:
        return await pairs.load_pairs(self._db, firm_id, account_ids)

    async def sides(
        self, firm_id: str, realm_id: str, wanted: Sequence[tuple[str, str]]
    ) -> dict[str, tuple[StoredAccount, StoredCustomer]]:
        return await pairs.load_sides(self._db, firm_id, realm_id, wanted)


class _AuditLog(_Bound, seam.AuditLog):
    async def record(self, entries: Sequence[AuditEntry]) -> None:
        await links.record_audit(self._db, entries)

    async def page(
        self, firm_id: str, account_id: str | None, before_id: int | None, limit: int
    ) -> list[AuditRecord]:
        return await links.audit_page(self._db, firm_id, account_id, before_id, limit)

    async def ever_linked(self, firm_id: str, account_id: str) -> bool:
        return await links.account_ever_linked(self._db, firm_id, account_id)


class _Outbox(_Bound, seam.Outbox):
    async def enqueue(self, messages: Sequence[OutgoingMessage]) -> None:
        await outbox.enqueue(self._db, messages)


class _Processed(_Bound, seam.Processed):
    async def among(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        return await processed.processed_among(self._db, consumer, message_ids)

    async def mark(self, consumer: str, message_ids: Sequence[str]) -> None:
        await processed.mark_processed(self._db, consumer, message_ids)


class _PendingCreates(_Bound, seam.PendingCreates):
    async def begin(
        self, firm_id: str, account_id: str, request_id: str, event_id: str
    ) -> PendingCreate:
        return await pending_creates.begin_create(
            self._db, firm_id, account_id, request_id, event_id
        )

    async def finish(
        self, firm_id: str, account_id: str, *, customer_id: str | None, failure: str | None = None
    ) -> None:
        await pending_creates.finish_create(
            self._db, firm_id, account_id, customer_id=customer_id, failure=failure
        )

    async def unfinished(self) -> list[PendingCreate]:
        return await pending_creates.unfinished_creates(self._db)


class _LiscioCreates(_Bound, seam.LiscioCreates):
    async def begin(
        self,
        firm_id: str,
        realm_id: str,
        customer_id: str,
        command_id: str,
        actor: str,
        retrying: LiscioCreate | None = None,
    ) -> tuple[LiscioCreate, bool]:
        return await liscio_creates.begin_liscio_create(
            self._db, firm_id, realm_id, customer_id, command_id, actor, retrying
        )

    async def of_command(self, command_id: str) -> LiscioCreate | None:
        return await liscio_creates.liscio_create_of_command(self._db, command_id)

    async def finish(
        self, command_id: str, *, account_id: str | None, failure: str | None = None
    ) -> None:
        await liscio_creates.finish_liscio_create(
            self._db, command_id, account_id=account_id, failure=failure
        )

    async def awaiting(self, realm_id: str) -> set[str]:
        return await liscio_creates.customers_awaiting_accounts(self._db, realm_id)

    async def waiting(self, realm_id: str, customer_ids: Sequence[str]) -> dict[str, LiscioCreate]:
        return await liscio_creates.waiting_liscio_creates(self._db, realm_id, customer_ids)

    async def expire(self, command_id: str) -> None:
        await liscio_creates.expire_liscio_create(self._db, command_id)


class _Connections(_Bound, seam.Connections):
    async def of_firm(self, firm_id: str) -> QuickBooksConnection | None:
        return await connections.get_connection(self._db, firm_id)

    async def of_realm(self, realm_id: str) -> QuickBooksConnection | None:
        return await connections.connection_of_realm(self._db, realm_id)

    async def count_needing_reconnect(self) -> int:
        return await connections.count_needing_reconnect(self._db)

    async def connected_realms(self) -> list[tuple[str, str]]:
        return await connections.connected_realms(self._db)

    async def remove(self, firm_id: str) -> bool:
        return await connections.remove_connection(self._db, firm_id)


class _Runs(_Bound, seam.Runs):
    async def open_or_join(
        self, firm_id: str, request_id: str, kind: str, requested_at: datetime
    ) -> tuple[Run, bool]:
        return await runs.open_or_join_run(self._db, firm_id, request_id, kind, requested_at)

    async def claim_next(self, step: Step) -> Run | None:
        return await runs.claim_step(self._db, step)

    async def waiting_for(self, step: Step, after: Step) -> list[tuple[Run, dict[str, Any]]]:
        return await runs.runs_waiting_for(self._db, step, after)

    async def open_step_ages(self) -> dict[Step, float]:
        return await runs.open_step_ages(self._db)

    async def claim(self, run_id: str, step: Step) -> bool:
        return await runs.claim_specific_step(self._db, run_id, step)

    async def renew_lease(self, run_id: str, step: Step) -> None:
        await runs.renew_lease(self._db, run_id, step)

    async def set_realm(self, run_id: str, realm_id: str) -> None:
        await runs.set_run_realm(self._db, run_id, realm_id)

    async def report(self, run_id: str) -> dict[str, Any] | None:
        return await runs.run_report(self._db, run_id)

    async def latest_of_firm(self, firm_id: str) -> str | None:
        return await runs.latest_run_of_firm(self._db, firm_id)

    async def finish_step(
        self, run_id: str, step: Step, counts: dict[str, int], *, failure: str | None = None
    ) -> None:
        await runs.finish_step(self._db, run_id, step, counts, failure=failure)


class _CdcMarks(_Bound, seam.CdcMarks):
    async def claim(self, realm_id: str) -> bool:
        return await cdc_marks.claim_realm_poll(self._db, realm_id)

    async def get(self, realm_id: str) -> datetime | None:
        return await cdc_marks.get_cdc_mark(self._db, realm_id)

    async def set(self, realm_id: str, changed_since: datetime) -> None:
        await cdc_marks.set_cdc_mark(self._db, realm_id, changed_since)


class _Locks(_Bound, seam.Locks):
    async def accounts(self, firm_id: str, account_ids: Sequence[str]) -> None:
        await lock_accounts(self._db, firm_id, account_ids)


class _Firms(_Bound, seam.Firms):
    async def exists(self, firm_id: str) -> bool:
        return await firms.firm_exists(self._db, firm_id)


class _InvoiceContacts(_Bound, seam.InvoiceContacts):
    async def record(self, made: InvoiceContact) -> None:
        await invoice_contacts.record_invoice_contact(self._db, made)

    async def names(self, realm_id: str, invoice_ids: Sequence[str]) -> dict[str, str | None]:
        return await invoice_contacts.invoice_contact_names(self._db, realm_id, invoice_ids)


class _Idempotency(_Bound, seam.Idempotency):
    async def claim(self, firm_id: str, key: str, fingerprint: str) -> IdempotencyClaim:
        return await idempotency.claim_key(self._db, firm_id, key, fingerprint)

    async def complete(self, firm_id: str, key: str, response: StoredResponse) -> None:
        await idempotency.complete_key(self._db, firm_id, key, response)

    async def release(self, firm_id: str, key: str) -> None:
        await idempotency.release_key(self._db, firm_id, key)


class _Records(_Bound, seam.Records):
    async def realm_of(self, firm_id: str) -> str | None:
        return await records.realm_of_firm(self._db, firm_id)

    async def page(
        self,
        firm_id: str,
        realm_id: str | None,
        record_filter: RecordFilter,
        q: str | None,
        after: RecordKey | None,
        limit: int,
    ) -> list[RecordItem]:
        return await records.list_records(
            self._db, firm_id, realm_id, record_filter, q, after, limit
        )

    async def counts(self, firm_id: str, realm_id: str | None) -> dict[str, int]:
        return await records.count_records(self._db, firm_id, realm_id)

    async def account(self, firm_id: str, account_id: str) -> AccountView | None:
        return await records.get_account_view(self._db, firm_id, account_id)

    async def customer(self, realm_id: str, customer_id: str) -> CustomerView | None:
        return await records.get_customer_view(self._db, realm_id, customer_id)

    async def suggest_customers(
        self, firm_id: str, realm_id: str, folded_name: str
    ) -> list[Suggestion]:
        return await records.suggest_customers(self._db, firm_id, realm_id, folded_name)

    async def suggest_accounts(self, firm_id: str, folded_name: str) -> list[Suggestion]:
        return await records.suggest_accounts(self._db, firm_id, folded_name)


def bound_to(db: Db) -> Repositories:
    """Every repository, bound to one connection (or to the pool: a statement each)."""
    return Repositories(
        accounts=_Accounts(db),
        audit=_AuditLog(db),
        cdc_marks=_CdcMarks(db),
        connections=_Connections(db),
        customers=_Customers(db),
        firms=_Firms(db),
        idempotency=_Idempotency(db),
        invoice_contacts=_InvoiceContacts(db),
        links=_Links(db),
        liscio_creates=_LiscioCreates(db),
        locks=_Locks(db),
        outbox=_Outbox(db),
        pairs=_Pairs(db),
        pending_creates=_PendingCreates(db),
        processed=_Processed(db),
        records=_Records(db),
        runs=_Runs(db),
    )


class PostgresUnitOfWork(UnitOfWork):
    """One per pool (a process has one): the gate for transactions that call QuickBooks
    counts that pool's connections."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._direct = bound_to(pool)
        self._calling = asyncio.Semaphore(max(1, pool.get_max_size() - RESERVED_CONNECTIONS))

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
        if calls_quickbooks:
            async with self._calling, self.pool.acquire() as conn, conn.transaction():
                yield bound_to(conn)
        else:
            async with self.pool.acquire() as conn, conn.transaction():
                yield bound_to(conn)
