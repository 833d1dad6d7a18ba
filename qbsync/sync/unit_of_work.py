"""The use cases' one seam to storage: a unit of work and the repositories it binds.

    async with uow.for_accounts(firm_id, account_ids, calls_quickbooks=True) as tx:
        pairs = await tx.pairs.load(firm_id, account_ids)
        ...

A `with` block is one transaction: it commits when the block ends and rolls back when it
raises. `for_accounts` holds the accounts' locks until then (taken in a fixed order, so two
transactions locking several accounts cannot deadlock); `begin` is a transaction without
them. `calls_quickbooks=True` says the block waits for QuickBooks while it holds its
connection: the unit of work lets only so many of those in at once, so that the calls'
own needs (the token store) always find a connection. `uow.direct` runs each call as a
statement of its own, for reads and writes that need no transaction.

The PostgreSQL unit of work is `qbsync.db.unit_of_work.PostgresUnitOfWork`; the
in-memory one of the unit tests is `tests.support.memory_uow.MemoryUnitOfWork`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from qbsync.db.accounts import StoredAccount
from qbsync.db.connections import QuickBooksConnection
from qbsync.db.customers import CustomerName, StoredCustomer
from qbsync.db.idempotency import IdempotencyClaim, StoredResponse
from qbsync.db.invoice_contacts import InvoiceContact
from qbsync.db.links import AuditEntry, AuditRecord, Link
from qbsync.db.liscio_creates import LiscioCreate
from qbsync.db.pairs import LinkedPair
from qbsync.db.pending_creates import PendingCreate
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
from schemas import AccountEvent, CustomerRecord

# (topic, key, value): a value is a message model or its JSON already encoded.
OutgoingMessage = tuple[str, str, BaseModel | str]


class Accounts(ABC):
    """Liscio accounts as their latest event described them."""

    @abstractmethod
    async def store(self, events: Sequence[AccountEvent]) -> None:
        """Keep each account's latest state (a redelivered older event changes nothing)."""

    @abstractmethod
    async def get(self, firm_id: str, account_id: str) -> StoredAccount | None: ...

    @abstractmethod
    async def unlinked_names(self, firm_id: str) -> list[Named]:
        """Id and name of every account of the firm neither archived nor linked."""

    @abstractmethod
    async def linked_ids(self, firm_id: str) -> list[str]:
        """Every linked account of the firm, in account order."""

    @abstractmethod
    async def awaiting_first_sync(self, firm_id: str) -> list[str]:
        """Accounts whose link has not had its first sync, in account order."""

    @abstractmethod
    async def mark_for_attention(self, firm_id: str, account_id: str, reason: str | None) -> None:
        """Put the account up for a person (None: it no longer needs one)."""

    @abstractmethod
    async def status_last_pushed(self, firm_id: str, account_id: str) -> str | None: ...

    @abstractmethod
    async def record_pushed_statuses(
        self, firm_id: str, statuses: Mapping[str, str | None]
    ) -> None: ...


class Customers(ABC):
    """QuickBooks customers as last read or written."""

    @abstractmethod
    async def store(self, records: Sequence[CustomerRecord]) -> None: ...

    @abstractmethod
    async def get(self, realm_id: str, customer_id: str) -> StoredCustomer | None: ...

    @abstractmethod
    async def unlinked_names(self, realm_id: str) -> list[CustomerName]: ...

    @abstractmethod
    async def count_seen_in_run(self, realm_id: str, run_id: str) -> int:
        """How many of the realm's customers a run's import has delivered here so far."""


class Links(ABC):
    """Links between an account and a customer, and the ambiguities left for a person."""

    @abstractmethod
    async def insert(
        self,
        firm_id: str,
        realm_id: str,
        pairs: Sequence[tuple[str, str]],
        how: str,
        first_synced: Sequence[bool] | None = None,
    ) -> list[Link]:
        """Link (account_id, customer_id) pairs; a pair whose account or customer is linked
        already is skipped. Returns the links made. `first_synced`, a flag per pair: the
        link's first sync is recorded as done now."""

    @abstractmethod
    async def delete(self, firm_id: str, account_id: str) -> Link | None: ...

    @abstractmethod
    async def of_account(self, firm_id: str, account_id: str) -> Link | None: ...

    @abstractmethod
    async def of_customers(self, realm_id: str, customer_ids: Sequence[str]) -> list[Link]: ...

    @abstractmethod
    async def mark_first_synced(self, firm_id: str, account_ids: Sequence[str]) -> None: ...

    @abstractmethod
    async def replace_ambiguities(
        self, firm_id: str, found: Sequence[Ambiguity], run_id: str | None
    ) -> None: ...


class Pairs(ABC):
    """Both sides of linked (or about to be linked) pairs, read together."""

    @abstractmethod
    async def load(
        self, firm_id: str, account_ids: Sequence[str] | None = None
    ) -> list[LinkedPair]:
        """The firm's linked pairs (all, or those of the accounts), in account order."""

    @abstractmethod
    async def sides(
        self, firm_id: str, realm_id: str, pairs: Sequence[tuple[str, str]]
    ) -> dict[str, tuple[StoredAccount, StoredCustomer]]:
        """Both sides of (account_id, customer_id) pairs, by account; a pair missing either
        side is left out."""


class AuditLog(ABC):
    @abstractmethod
    async def record(self, entries: Sequence[AuditEntry]) -> None: ...

    @abstractmethod
    async def page(
        self, firm_id: str, account_id: str | None, before_id: int | None, limit: int
    ) -> list[AuditRecord]:
        """The firm's entries (of one account, or all), newest first, older than
        `before_id`."""

    @abstractmethod
    async def ever_linked(self, firm_id: str, account_id: str) -> bool:
        """Whether the account was ever linked (a `link.created` entry)."""


class Outbox(ABC):
    """Messages published once the transaction that wrote them commits."""

    @abstractmethod
    async def enqueue(self, messages: Sequence[OutgoingMessage]) -> None: ...


class Processed(ABC):
    """Message ids a consumer has handled, so that a redelivery has no further effect."""

    @abstractmethod
    async def among(self, consumer: str, message_ids: Sequence[str]) -> set[str]: ...

    @abstractmethod
    async def mark(self, consumer: str, message_ids: Sequence[str]) -> None: ...


class PendingCreates(ABC):
    """Customer creates recorded before QuickBooks is called."""

    @abstractmethod
    async def begin(
        self, firm_id: str, account_id: str, request_id: str, event_id: str
    ) -> PendingCreate:
        """Record the intent; an unfinished earlier attempt keeps its request id."""

    @abstractmethod
    async def finish(
        self, firm_id: str, account_id: str, *, customer_id: str | None, failure: str | None = None
    ) -> None: ...

    @abstractmethod
    async def unfinished(self) -> list[PendingCreate]: ...


class LiscioCreates(ABC):
    """Create in Liscio: `account.create` commands waiting for Liscio's answer."""

    @abstractmethod
    async def begin(
        self,
        firm_id: str,
        realm_id: str,
        customer_id: str,
        command_id: str,
        actor: str,
        retrying: LiscioCreate | None = None,
    ) -> tuple[LiscioCreate, bool]:
        """Record the command (the next attempt of `retrying`), or find the customer's one
        still waiting: (command, new)."""

    @abstractmethod
    async def of_command(self, command_id: str) -> LiscioCreate | None: ...

    @abstractmethod
    async def finish(
        self, command_id: str, *, account_id: str | None, failure: str | None = None
    ) -> None: ...

    @abstractmethod
    async def waiting(self, realm_id: str, customer_ids: Sequence[str]) -> dict[str, LiscioCreate]:
        """The commands still waiting for their account, by customer id."""

    @abstractmethod
    async def expire(self, command_id: str) -> None:
        """Stop waiting for the command's answer (a late one is still linked if it can)."""

    @abstractmethod
    async def awaiting(self, realm_id: str) -> set[str]:
        """The realm's customers whose account Liscio is still to create."""


class Connections(ABC):
    """The firms' QuickBooks connections."""

    @abstractmethod
    async def of_firm(self, firm_id: str) -> QuickBooksConnection | None: ...

    @abstractmethod
    async def of_realm(self, realm_id: str) -> QuickBooksConnection | None: ...

    @abstractmethod
    async def count_needing_reconnect(self) -> int: ...

    @abstractmethod
    async def connected_realms(self) -> list[tuple[str, str]]:
        """(firm_id, realm_id) of every usable connection."""

    @abstractmethod
    async def remove(self, firm_id: str) -> bool:
        """Forget the firm's connection (its records and links stay)."""


class Runs(ABC):
    """Sync Now runs and their steps, each step claimed under a lease by one process."""

    @abstractmethod
    async def open_or_join(
        self, firm_id: str, request_id: str, kind: str, requested_at: datetime
    ) -> tuple[Run, bool]:
        """The firm's run that has not started with this request added, or a new one, which
        starts once the firm's run under way ends: (run, created)."""

    @abstractmethod
    async def claim_next(self, step: Step) -> Run | None:
        """The oldest claimable `step` of any open run that is its firm's oldest, claimed;
        None if there is none."""

    @abstractmethod
    async def waiting_for(self, step: Step, after: Step) -> list[tuple[Run, dict[str, Any]]]:
        """Runs whose `step` is claimable while `after` is done, with `after`'s counts."""

    @abstractmethod
    async def claim(self, run_id: str, step: Step) -> bool: ...

    @abstractmethod
    async def open_step_ages(self) -> dict[Step, float]:
        """Per step, the seconds the open run longest in it has been there."""

    @abstractmethod
    async def renew_lease(self, run_id: str, step: Step) -> None: ...

    @abstractmethod
    async def set_realm(self, run_id: str, realm_id: str) -> None: ...

    @abstractmethod
    async def report(self, run_id: str) -> dict[str, Any] | None:
        """The run as `qbsync sync --json` prints it."""

    @abstractmethod
    async def latest_of_firm(self, firm_id: str) -> str | None:
        """The id of the firm's most recently requested run."""

    @abstractmethod
    async def finish_step(
        self, run_id: str, step: Step, counts: dict[str, int], *, failure: str | None = None
    ) -> None:
        """A failed step fails the run; the last step done ends it."""


class CdcMarks(ABC):
    """Where each realm's change polling (CDC) carries on from."""

    @abstractmethod
    async def claim(self, realm_id: str) -> bool:
        """Whether this transaction may poll the realm (no other one is): held until it
        ends. Only meaningful inside a transaction."""

    @abstractmethod
    async def get(self, realm_id: str) -> datetime | None: ...

    @abstractmethod
    async def set(self, realm_id: str, changed_since: datetime) -> None: ...


class Locks(ABC):
    @abstractmethod
    async def accounts(self, firm_id: str, account_ids: Sequence[str]) -> None:
        """Hold the accounts' locks until the transaction ends (for accounts known only
        once it has begun; `for_accounts` takes them itself)."""


class Firms(ABC):
    @abstractmethod
    async def exists(self, firm_id: str) -> bool:
        """Whether Liscio's stream carried one of the firm's accounts or it is connected."""


class Idempotency(ABC):
    """The API's Idempotency-Keys, 24 hours per firm."""

    @abstractmethod
    async def claim(self, firm_id: str, key: str, fingerprint: str) -> IdempotencyClaim:
        """Hold the key for this request (`new`), or say what it already stands for."""

    @abstractmethod
    async def complete(self, firm_id: str, key: str, response: StoredResponse) -> None: ...

    @abstractmethod
    async def release(self, firm_id: str, key: str) -> None:
        """Free a key whose request did not answer (a retry may try again)."""


class InvoiceContacts(ABC):
    """Who each invoice made through the API was for."""

    @abstractmethod
    async def record(self, made: InvoiceContact) -> None:
        """Once per invoice (a repeated record of it changes nothing)."""

    @abstractmethod
    async def names(self, realm_id: str, invoice_ids: Sequence[str]) -> dict[str, str | None]:
        """invoice id -> the contact's name, for those of the invoices made here."""


class Records(ABC):
    """What the integration page lists: both sides' records of a firm as one ordered list
    of items (qbsync/db/records.py says what is listed and in which order)."""

    @abstractmethod
    async def realm_of(self, firm_id: str) -> str | None:
        """The firm's QuickBooks company (its connection's, or its links' once
        disconnected)."""

    @abstractmethod
    async def page(
        self,
        firm_id: str,
        realm_id: str | None,
        record_filter: RecordFilter,
        q: str | None,
        after: RecordKey | None,
        limit: int,
    ) -> list[RecordItem]: ...

    @abstractmethod
    async def counts(self, firm_id: str, realm_id: str | None) -> dict[str, int]:
        """How many items each filter (but `all`) lists."""

    @abstractmethod
    async def account(self, firm_id: str, account_id: str) -> AccountView | None: ...

    @abstractmethod
    async def customer(self, realm_id: str, customer_id: str) -> CustomerView | None: ...

    @abstractmethod
    async def suggest_customers(
        self, firm_id: str, realm_id: str, folded_name: str
    ) -> list[Suggestion]:
        """Up to 10 unlinked customers (active, no parent) with a similar name."""

    @abstractmethod
    async def suggest_accounts(self, firm_id: str, folded_name: str) -> list[Suggestion]:
        """Up to 10 unlinked accounts (not archived) with a similar name."""


class Repositories:
    """The repositories bound to one transaction (or, as `uow.direct`, to none)."""

    __slots__ = (
        "accounts",
        "audit",
        "cdc_marks",
        "connections",
        "customers",
        "firms",
        "idempotency",
        "invoice_contacts",
        "links",
        "liscio_creates",
        "locks",
        "outbox",
        "pairs",
        "pending_creates",
        "processed",
        "records",
        "runs",
    )

    def __init__(
        self,
        *,
        accounts: Accounts,
        audit: AuditLog,
        cdc_marks: CdcMarks,
        connections: Connections,
        customers: Customers,
        firms: Firms,
        idempotency: Idempotency,
        invoice_contacts: InvoiceContacts,
        links: Links,
        liscio_creates: LiscioCreates,
        locks: Locks,
        outbox: Outbox,
        pairs: Pairs,
        pending_creates: PendingCreates,
        processed: Processed,
        records: Records,
        runs: Runs,
    ) -> None:
        self.accounts = accounts
        self.audit = audit
        self.cdc_marks = cdc_marks
        self.connections = connections
        self.customers = customers
        self.firms = firms
        self.idempotency = idempotency
        self.invoice_contacts = invoice_contacts
        self.links = links
        self.liscio_creates = liscio_creates
        self.locks = locks
        self.outbox = outbox
        self.pairs = pairs
        self.pending_creates = pending_creates
        self.processed = processed
        self.records = records
        self.runs = runs


class UnitOfWork(ABC):
    @abstractmethod
    def for_accounts(
        self, firm_id: str, account_ids: Sequence[str], *, calls_quickbooks: bool = False
    ) -> AbstractAsyncContextManager[Repositories]:
        """A transaction holding the accounts' locks."""

    @abstractmethod
    def begin(self, *, calls_quickbooks: bool = False) -> AbstractAsyncContextManager[Repositories]:
        """A transaction without locks (take them with `tx.locks.accounts`)."""

    @property
    @abstractmethod
    def direct(self) -> Repositories:
        """Repositories whose every call is a transaction of its own."""
