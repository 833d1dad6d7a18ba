"""Pydantic models of every message value (see docs/contracts.md for keys and topics)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NonEmptyId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Message(BaseModel):
    # Producers outside the project may add fields; we keep reading.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Address(_Message):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class Contact(_Message):
    id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class AccountState(_Message):
    id: NonEmptyId
    name: str
    status: str | None = None
    address: Address | None = None
    phone: str | None = None
    website: str | None = None
    contacts: list[Contact] = Field(default_factory=list)


class AccountEvent(_Message):
    """liscio.account-events: the full current state of one Liscio account."""

    event_id: NonEmptyId
    type: Literal["account.created", "account.updated", "account.archived"]
    occurred_at: datetime
    firm_id: NonEmptyId
    account: AccountState
    # The `account.create` command an `account.created` event answers (Create in Liscio).
    command_id: str | None = None


class AccountFields(_Message):
    """Only the fields to set; absent means 'leave alone'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address | None = None
    phone: str | None = None
    website: str | None = None


class CommandSource(_Message):
    realm_id: str
    customer_id: str


class AccountCommand(_Message):
    """liscio.account-commands: what the project asks Liscio to do."""

    command_id: NonEmptyId
    type: Literal["account.fill_fields", "account.create"]
    firm_id: NonEmptyId
    account_id: str | None
    name: str | None = None
    fields: AccountFields
    source: CommandSource
    issued_at: datetime


class CustomerRecord(_Message):
    """qbo.customers: one QuickBooks customer as the importer last saw it."""

    realm_id: NonEmptyId
    customer_id: NonEmptyId
    display_name: str
    active: bool = True
    deleted: bool = False
    merged_into: str | None = None
    parent_id: str | None = None
    sync_token: str | None = None
    address: Address | None = None
    phone: str | None = None
    website: str | None = None
    email: str | None = None
    last_updated: datetime | None = None
    firm_id: str | None = None
    run_id: str | None = None
    source: Literal["import", "cdc", "webhook", "write"] = "import"


class SyncRequest(_Message):
    """sync.requests: a Sync Now or a replay of one firm."""

    request_id: NonEmptyId
    firm_id: NonEmptyId
    kind: Literal["sync", "replay"]
    requested_at: datetime


class LinkEvent(_Message):
    """sync.links: a link made or removed."""

    event_id: NonEmptyId
    type: Literal["link.created", "link.removed"]
    firm_id: str
    account_id: str
    realm_id: str
    customer_id: str
    how: Literal["auto", "manual", "created"]
    reason: str
    at: datetime


class DeadLetter(_Message):
    """<topic>.dlq: a message that could not be processed, with the reason."""

    error: str
    topic: str
    partition: int
    offset: int
    value_b64: str
    service: str
    at: datetime


class QboChangeNotice(_Message):
    """qbo.changes (internal): a webhook said a QuickBooks entity changed."""

    realm_id: NonEmptyId
    entity: str
    entity_id: str
    operation: str
    deleted_id: str | None = None
    last_updated: datetime | None = None
    received_at: datetime


MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "account_event": AccountEvent,
    "account_command": AccountCommand,
    "customer_record": CustomerRecord,
    "sync_request": SyncRequest,
    "link_event": LinkEvent,
    "dead_letter": DeadLetter,
    "qbo_change_notice": QboChangeNotice,
}
