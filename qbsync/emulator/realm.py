"""One QuickBooks company (a realm) held in memory: its entities, the names QuickBooks keeps
unique, the change log CDC reads, and the answers remembered for `requestid` replays."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from qbsync.emulator.entities import ACCOUNT, CUSTOMER, INVOICE, ITEM

JsonObject = dict[str, Any]


class ChangeListener(Protocol):
    def __call__(
        self,
        realm_id: str,
        entity: str,
        entity_id: str,
        operation: str,
        at: float,
        deleted_id: str | None = None,
    ) -> None:
        """operation is Create, Update or Merge (`deleted_id` names the merged-away one)."""


REMEMBERED_RESPONSES = 100_000


@dataclass
class EntityTable:
    """The rows of one entity type, in Id order, and when each last changed."""

    name: str
    rows: dict[str, JsonObject] = field(default_factory=dict)
    next_id: int = 1
    # Every change appended as (time, id); times never decrease, so CDC can bisect.
    change_times: list[float] = field(default_factory=list)
    change_ids: list[str] = field(default_factory=list)
    last_change: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, JsonObject] = field(default_factory=dict)

    def allocate_id(self) -> str:
        allocated = str(self.next_id)
        self.next_id += 1
        return allocated

    def record_change(self, entity_id: str, at: float) -> None:
        if self.change_times and at < self.change_times[-1]:
            at = self.change_times[-1]
        self.change_times.append(at)
        self.change_ids.append(entity_id)
        self.last_change[entity_id] = at

    def changed_since(self, since: float) -> list[str]:
        """Ids changed at or after `since`, oldest change first, each once."""
        start = bisect.bisect_left(self.change_times, since)
        seen: dict[str, None] = {}
        for index in range(start, len(self.change_ids)):
            seen.pop(self.change_ids[index], None)
            seen[self.change_ids[index]] = None
        return list(seen)


@dataclass(frozen=True)
class NameOwner:
    kind: str  # "Customer", "Vendor" or "Employee"
    entity_id: str


@dataclass
class Realm:
    realm_id: str
    created_at: float
    customers: EntityTable = field(default_factory=lambda: EntityTable(CUSTOMER))
    items: EntityTable = field(default_factory=lambda: EntityTable(ITEM))
    invoices: EntityTable = field(default_factory=lambda: EntityTable(INVOICE))
    accounts: EntityTable = field(default_factory=lambda: EntityTable(ACCOUNT))
    # Display names, case-folded, of customers, vendors and employees: all share one namespace.
    names: dict[str, NameOwner] = field(default_factory=dict)
    next_address_id: int = 1
    next_doc_number: int = 1001
    responses: OrderedDict[str, tuple[int, bytes]] = field(default_factory=OrderedDict)
    listener: ChangeListener | None = None

    def table(self, entity: str) -> EntityTable:
        tables = {
            CUSTOMER: self.customers,
            ITEM: self.items,
            INVOICE: self.invoices,
            ACCOUNT: self.accounts,
        }
        return tables[entity]

    def allocate_address_id(self) -> str:
        allocated = str(self.next_address_id)
        self.next_address_id += 1
        return allocated

    def allocate_doc_number(self) -> str:
        allocated = str(self.next_doc_number)
        self.next_doc_number += 1
        return allocated

    def name_owner(self, display_name: str) -> NameOwner | None:
        return self.names.get(name_key(display_name))

    def changed(
        self,
        entity: str,
        entity_id: str,
        operation: str,
        at: float,
        *,
        deleted_id: str | None = None,
    ) -> None:
        """Record a change for CDC and tell the webhook notifier."""
        self.table(entity).record_change(entity_id, at)
        if self.listener is not None:
            self.listener(self.realm_id, entity, entity_id, operation, at, deleted_id)

    def remember(self, request_id: str, status: int, body: bytes) -> None:
        self.responses[request_id] = (status, body)
        while len(self.responses) > REMEMBERED_RESPONSES:
            self.responses.popitem(last=False)

    def remembered(self, request_id: str) -> tuple[int, bytes] | None:
        return self.responses.get(request_id)


def name_key(display_name: str) -> str:
    """QuickBooks compares names ignoring case and surrounding spaces."""
    return display_name.strip().casefold()
