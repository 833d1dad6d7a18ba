"""A linked account's invoices, read from and created in QuickBooks (DOMAIN.md rule 11).

Listing reads the linked customer, its sub-customers and their invoices live from
QuickBooks (queries page through 1000 rows at a time); nothing is copied. Creating makes the
invoice out to whom `qbsync.domain.invoices.addressee` says, with one sales item line per
line given, on the realm's item named `Services` (created once when the realm has none),
and remembers the contact it was for: the list names that contact, and for an invoice made
elsewhere the individual on its customer.

Exactly once in effect: every QuickBooks write carries a requestid derived from the
caller's `request_id`, so a retry of the same request gets QuickBooks' first answer. Two
first invoices of a realm at once may both try to create the Services item: one wins, the
other's create is refused as a duplicate name (6240) and it uses the winner's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from qbsync.db.connections import QuickBooksConnection
from qbsync.db.invoice_contacts import InvoiceContact
from qbsync.db.links import Link
from qbsync.domain.invoices import (
    InvoiceStatus,
    Person,
    addressee,
    id_order,
    individual_name,
    status_matches,
    text_matches,
)
from qbsync.errors import Conflict, NotFound, ReconnectNeeded
from qbsync.quickbooks.errors import (
    DuplicateNameError,
    ObjectNotFoundError,
    QuickBooksRefusal,
)
from qbsync.sync.field_sync import stable_id
from qbsync.sync.ports import InvoiceGateway
from qbsync.sync.unit_of_work import UnitOfWork

log = logging.getLogger("qbsync.sync.invoices")

SERVICES_ITEM = "Services"
SALES_ITEM_LINE = "SalesItemLineDetail"


@dataclass(frozen=True)
class InvoiceLine:
    amount: float
    description: str | None


@dataclass(frozen=True)
class InvoiceView:
    """One invoice as the integration page shows it (CONTRACTS.md's invoice item)."""

    id: str
    doc_number: str | None
    txn_date: str | None
    due_date: str | None
    total: float
    balance: float
    customer_id: str
    contact_name: str | None


@dataclass(frozen=True)
class _Linked:
    realm_id: str
    customer: dict[str, Any]


async def list_invoices(
    uow: UnitOfWork,
    quickbooks: InvoiceGateway,
    firm_id: str,
    account_id: str,
    *,
    q: str | None = None,
    status: InvoiceStatus = "all",
) -> list[InvoiceView]:
    """The linked customer's invoices and its sub-customers', newest first."""
    linked = await _linked_customer(uow, quickbooks, firm_id, account_id)
    family = [linked.customer] + await quickbooks.sub_customers(
        linked.realm_id, str(linked.customer["FullyQualifiedName"])
    )
    people = {str(c["Id"]): _person(c) for c in family}
    invoices = await quickbooks.invoices_of_customers(linked.realm_id, list(people))
    made_here = await uow.direct.invoice_contacts.names(
        linked.realm_id, [str(invoice["Id"]) for invoice in invoices]
    )
    views = [
        _view(
            invoice,
            made_here[str(invoice["Id"])]
            if str(invoice["Id"]) in made_here
            else _contact_name_of(invoice, people),
        )
        for invoice in invoices
        if status_matches(status, float(invoice.get("Balance", 0)))
        and text_matches(q, invoice.get("DocNumber"), _descriptions(invoice))
    ]
    return sorted(views, key=lambda v: (v.txn_date or "", id_order(v.id)), reverse=True)


async def create_invoice(
    uow: UnitOfWork,
    quickbooks: InvoiceGateway,
    firm_id: str,
    account_id: str,
    *,
    contact_id: str,
    lines: Sequence[InvoiceLine],
    due_date: date | None,
    request_id: str,
) -> InvoiceView:
    """An invoice for one of the account's contacts, made in QuickBooks for the linked
    customer (or the sub-customer that is the contact)."""
    if await uow.direct.accounts.get(firm_id, account_id) is None:
        raise NotFound("account", account_id)
    account = await uow.direct.records.account(firm_id, account_id)
    if account is None:
        raise NotFound("account", account_id)
    contact = next((c for c in account.contacts if c.get("id") == contact_id), None)
    if contact is None:
        raise NotFound(f"contact of account {account_id!r}", contact_id)
    linked = await _linked_customer(uow, quickbooks, firm_id, account_id)
    subs = await quickbooks.sub_customers(
        linked.realm_id, str(linked.customer["FullyQualifiedName"])
    )
    chosen = addressee(
        contact.get("first_name"),
        contact.get("last_name"),
        _person(linked.customer),
        [_person(sub) for sub in subs],
    )
    try:
        item = await services_item(quickbooks, linked.realm_id, request_id)
        body: dict[str, Any] = {
            "CustomerRef": {"value": chosen.customer_id},
            "Line": [_sales_line(line, item) for line in lines],
        }
        if due_date is not None:
            body["DueDate"] = due_date.isoformat()
        invoice = await quickbooks.create_invoice(
            linked.realm_id, body, request_id=stable_id("invoice", firm_id, account_id, request_id)
        )
    except QuickBooksRefusal as exc:
        # E.g. the sub-customer was made inactive a moment ago: the records have moved on.
        raise Conflict(f"QuickBooks refused the invoice: {exc}") from exc
    await uow.direct.invoice_contacts.record(
        InvoiceContact(
            linked.realm_id,
            str(invoice["Id"]),
            firm_id,
            account_id,
            contact_id,
            chosen.contact_name,
        )
    )
    log.info(
        "invoice %s created for account %s (customer %s)",
        invoice.get("Id"),
        account_id,
        chosen.customer_id,
        extra={"firm_id": firm_id, "realm_id": linked.realm_id},
    )
    return _view(invoice, chosen.contact_name)


async def services_item(
    quickbooks: InvoiceGateway, realm_id: str, request_id: str
) -> dict[str, Any]:
    """The realm's item named Services, created as a service item when it has none."""
    found = await quickbooks.find_items_by_name(realm_id, SERVICES_ITEM)
    if found:
        return min(found, key=lambda item: id_order(str(item["Id"])))
    accounts = await quickbooks.income_accounts(realm_id)
    if not accounts:
        raise Conflict("QuickBooks has no income account to book the Services item to")
    # QuickBooks' own Services income account when the company has it, else its first.
    income = next(
        (a for a in accounts if str(a.get("Name", "")).casefold() == SERVICES_ITEM.casefold()),
        min(accounts, key=lambda a: id_order(str(a["Id"]))),
    )
    body = {"Name": SERVICES_ITEM, "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}}
    try:
        return await quickbooks.create_item(
            realm_id, body, request_id=stable_id("services-item", realm_id, request_id)
        )
    except DuplicateNameError:
        # Another first invoice created it meanwhile.
        found = await quickbooks.find_items_by_name(realm_id, SERVICES_ITEM)
        if not found:
            raise
        return min(found, key=lambda item: id_order(str(item["Id"])))


async def _linked_customer(
    uow: UnitOfWork, quickbooks: InvoiceGateway, firm_id: str, account_id: str
) -> _Linked:
    if await uow.direct.accounts.get(firm_id, account_id) is None:
        raise NotFound("account", account_id)
    connection = await uow.direct.connections.of_firm(firm_id)
    link = await uow.direct.links.of_account(firm_id, account_id)
    _check_linked(account_id, link, connection)
    assert link is not None
    try:
        customer = await quickbooks.read_customer(link.realm_id, link.customer_id)
    except ObjectNotFoundError:
        raise Conflict(
            f"account {account_id!r} is linked to customer {link.customer_id!r},"
            " which is gone from QuickBooks"
        ) from None
    if not customer.get("Active", True):
        raise Conflict(
            f"account {account_id!r} is linked to customer {link.customer_id!r},"
            " which is inactive in QuickBooks"
        )
    return _Linked(link.realm_id, customer)


def _check_linked(
    account_id: str, link: Link | None, connection: QuickBooksConnection | None
) -> None:
    if connection is None:
        raise Conflict("the firm is not connected to QuickBooks")
    if not connection.usable:
        raise ReconnectNeeded("the firm's QuickBooks connection needs to be reconnected")
    if link is None or link.realm_id != connection.realm_id:
        raise Conflict(f"account {account_id!r} is not linked to a QuickBooks customer")


def _person(customer: dict[str, Any]) -> Person:
    return Person(
        str(customer["Id"]),
        str(customer.get("DisplayName", "")),
        customer.get("GivenName"),
        customer.get("FamilyName"),
        bool(customer.get("Active", True)),
    )


def _contact_name_of(invoice: dict[str, Any], people: dict[str, Person]) -> str | None:
    person = people.get(str((invoice.get("CustomerRef") or {}).get("value")))
    return individual_name(person) if person is not None else None


def _descriptions(invoice: dict[str, Any]) -> list[str]:
    return [
        str(line["Description"]) for line in invoice.get("Line") or [] if line.get("Description")
    ]


def _sales_line(line: InvoiceLine, item: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "Amount": line.amount,
        "DetailType": SALES_ITEM_LINE,
        SALES_ITEM_LINE: {
            "ItemRef": {"value": str(item["Id"]), "name": item.get("Name", SERVICES_ITEM)},
            "Qty": 1,
            "UnitPrice": line.amount,
        },
    }
    if line.description:
        shaped["Description"] = line.description
    return shaped


def _view(invoice: dict[str, Any], contact_name: str | None) -> InvoiceView:
    return InvoiceView(
        id=str(invoice["Id"]),
        doc_number=invoice.get("DocNumber"),
        txn_date=invoice.get("TxnDate"),
        due_date=invoice.get("DueDate"),
        total=float(invoice.get("TotalAmt", 0)),
        balance=float(invoice.get("Balance", 0)),
        customer_id=str((invoice.get("CustomerRef") or {}).get("value")),
        contact_name=contact_name,
    )
