"""The API's JSON shapes (CONTRACTS.md, "Shapes"), as pydantic models: they are the
OpenAPI's response schemas, with examples. Every listed key is always present (null when it
has no value)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from qbsync.db.records import RecordItem
from qbsync.sync.integration import CreateInLiscio

ADDRESS_EXAMPLE: dict[str, JsonValue] = {
    "line1": "1 Main St",
    "line2": None,
    "city": "Austin",
    "state": "TX",
    "postal_code": "78701",
    "country": "US",
}


class Address(BaseModel):
    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None


def _stored_address(raw: Any) -> Any:
    """A stored address (a dict without the parts that have no value) in the full shape."""
    if isinstance(raw, dict):
        return {part: raw.get(part) for part in Address.model_fields}
    return raw


def _stored_contacts(raw: Any) -> Any:
    """Stored contacts (dicts without the keys that have no value) in the full shape."""
    if isinstance(raw, list):
        return [
            {"first_name": None, "last_name": None, "email": None} | c if isinstance(c, dict) else c
            for c in raw
        ]
    return raw


# What a view holds as it is stored; the JSON (and the OpenAPI) is the Address's.
StoredAddress = Annotated[Address | None, BeforeValidator(_stored_address)]


class Contact(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    first_name: str | None
    last_name: str | None
    email: str | None


class Account(BaseModel):
    """A Liscio account as its latest event described it."""

    # Made from an AccountView by `Account.model_validate(view)` (from_attributes).

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "id": "a-456",
                "name": "Acme Tax LLC",
                "status": "Client",
                "archived": False,
                "address": ADDRESS_EXAMPLE,
                "phone": "512-555-0100",
                "website": "https://acme.example",
                "contacts": [
                    {
                        "id": "c-1",
                        "first_name": "Ada",
                        "last_name": "Lovelace",
                        "email": "ada@acme.example",
                    }
                ],
            }
        },
    )

    id: str
    name: str
    status: str | None
    archived: bool
    address: StoredAddress
    phone: str | None
    website: str | None
    contacts: Annotated[list[Contact], BeforeValidator(_stored_contacts)]


class Customer(BaseModel):
    """A QuickBooks customer as last seen (the address in the account's shape)."""

    # Made from a CustomerView by `Customer.model_validate(view)` (from_attributes).

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "id": "58",
                "realm_id": "9130350000000000",
                "display_name": "Acme Tax LLC",
                "active": True,
                "parent_id": None,
                "address": ADDRESS_EXAMPLE,
                "phone": "512-555-0100",
                "website": "https://acme.example",
            }
        },
    )

    id: str
    realm_id: str
    display_name: str
    active: bool
    parent_id: str | None
    address: StoredAddress
    phone: str | None
    website: str | None


class Link(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "account_id": "a-456",
                "customer_id": "58",
                "realm_id": "9130350000000000",
                "how": "manual",
                "linked_at": "2026-11-25T16:00:01Z",
            }
        },
    )

    account_id: str
    customer_id: str
    realm_id: str
    how: Literal["auto", "manual", "created"]
    linked_at: datetime


class RunStep(BaseModel):
    status: Literal["pending", "running", "done", "failed"]
    counts: dict[str, int]
    reason: str | None = None


class Run(BaseModel):
    """A Sync Now run: the document `qbsync sync --json` prints."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "run_id": "4b0e8a8e-8d4c-4c57-9d1a-0d5f3f0f6f10",
                "firm_id": "f-123",
                "realm_id": "9130350000000000",
                "kind": "sync",
                "status": "running",
                "reason": None,
                "requested_at": "2026-11-25T16:00:00Z",
                "finished_at": None,
                "steps": {
                    "import": {"status": "done", "counts": {"customers": 120}, "reason": None},
                    "match": {"status": "running", "counts": {}, "reason": None},
                    "push": {"status": "pending", "counts": {}, "reason": None},
                },
            }
        }
    )

    run_id: str
    firm_id: str
    realm_id: str | None
    kind: Literal["sync", "replay"]
    status: Literal["pending", "running", "done", "failed"]
    reason: str | None
    requested_at: datetime
    finished_at: datetime | None
    steps: dict[Literal["import", "match", "push"], RunStep]


class Connection(BaseModel):
    realm_id: str
    status: Literal["connected", "needs_reconnect"]


class Counts(BaseModel):
    linked: int
    unlinked_accounts: int
    unlinked_customers: int
    ambiguous: int
    attention: int


class Integration(BaseModel):
    connection: Connection | None
    last_run: Run | None
    counts: Counts


class LiscioCreate(BaseModel):
    """Create in Liscio asked for an unlinked customer, still waiting for Liscio's answer."""

    model_config = ConfigDict(from_attributes=True)

    command_id: str
    asked_at: datetime | None
    retryable: bool = Field(
        description="Liscio has not answered for QBSYNC_LISCIO_CREATE_EXPIRY_HOURS: Create in"
        " Liscio may be asked again (a new command), or the customer linked by hand"
    )


class Record(BaseModel):
    """A linked pair, an unlinked account or an unlinked customer."""

    model_config = ConfigDict(from_attributes=True)

    account: Account | None
    customer: Customer | None
    link: Link | None
    attention: str | None
    liscio_create: LiscioCreate | None = Field(
        description="An unlinked customer that Liscio was asked to create an account for"
    )

    @classmethod
    def of(cls, item: RecordItem, creating: Mapping[str, CreateInLiscio]) -> Record:
        waiting = creating.get(item.customer.id) if item.customer and not item.link else None
        return cls(
            account=item.account,
            customer=item.customer,
            link=item.link,
            attention=item.attention,
            liscio_create=waiting,
        )


class Records(BaseModel):
    items: list[Record]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class CustomerSuggestion(BaseModel):
    customer: Customer
    score: float = Field(gt=0, le=1)


class AccountSuggestion(BaseModel):
    account: Account
    score: float = Field(gt=0, le=1)


class Suggestions(BaseModel):
    items: list[CustomerSuggestion] | list[AccountSuggestion]


class AuditItem(BaseModel):
    at: datetime
    action: str = Field(examples=["link.created", "link.removed", "field.written"])
    account_id: str | None
    customer_id: str | None
    side: Literal["quickbooks", "liscio"] | None
    field: str | None
    old: Any
    new: Any
    reason: str
    actor: str = Field(examples=["u-7", "sync"])


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_cursor: str | None


class LinkProposal(BaseModel):
    account_id: str
    customer_id: str


class PlannedWrite(BaseModel):
    account_id: str
    side: Literal["quickbooks", "liscio"]
    field: Literal["address", "phone", "website"]
    old: Any
    new: Any


class AmbiguousName(BaseModel):
    name: str
    account_ids: list[str]
    customer_ids: list[str]


class DryRun(BaseModel):
    """What a Sync Now would do now, computed from the stored copies."""

    links: list[LinkProposal]
    writes: list[PlannedWrite]
    ambiguous: list[AmbiguousName]
