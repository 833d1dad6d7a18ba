"""Invoices for a linked account's contacts (DOMAIN.md rule 11, CONTRACTS.md's invoice rows).

An invoice is made for the linked customer. When QuickBooks knows the contact (the linked
customer's individual is the contact, or one of its sub-customers carries the contact's
full name) the invoice names the contact, and a sub-customer of that name becomes the
invoice's customer; otherwise it names the individual on the linked customer. Names are
compared as Sync Now compares them: equal ignoring case (`fold`), after collapsing spaces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from qbsync.domain.matching import fold

InvoiceStatus = Literal["open", "paid", "all"]


@dataclass(frozen=True)
class Person:
    """A QuickBooks customer as the contact rule sees it."""

    customer_id: str
    display_name: str
    given_name: str | None = None
    family_name: str | None = None
    active: bool = True


@dataclass(frozen=True)
class InvoiceAddressee:
    customer_id: str  # the invoice's CustomerRef
    contact_name: str | None


def full_name(*parts: str | None) -> str | None:
    """The parts that have a value, stripped and joined by one space; None when none has."""
    words = [word for part in parts if part for word in part.split()]
    return " ".join(words) or None


def individual_name(person: Person) -> str | None:
    """The individual on a customer: `GivenName FamilyName`, None for a company alone."""
    return full_name(person.given_name, person.family_name)


def _same(left: str | None, right: str | None) -> bool:
    return left is not None and right is not None and fold(left) == fold(right)


def addressee(
    contact_first_name: str | None,
    contact_last_name: str | None,
    linked: Person,
    sub_customers: Iterable[Person],
) -> InvoiceAddressee:
    """Whom a new invoice for a contact is made out to. `sub_customers` are the linked
    customer's (any depth); an inactive one is never chosen (QuickBooks refuses to invoice
    it). Of several sub-customers with the contact's name, the lowest Id wins (QuickBooks
    Ids are numbers), so the same contact always lands on the same customer."""
    contact = full_name(contact_first_name, contact_last_name)
    if contact is not None and _same(individual_name(linked), contact):
        return InvoiceAddressee(linked.customer_id, contact)
    if contact is not None:
        named = [
            sub
            for sub in sub_customers
            if sub.active
            and sub.customer_id != linked.customer_id
            and (_same(individual_name(sub), contact) or _same(sub.display_name, contact))
        ]
        if named:
            chosen = min(named, key=lambda sub: id_order(sub.customer_id))
            return InvoiceAddressee(chosen.customer_id, contact)
    return InvoiceAddressee(linked.customer_id, individual_name(linked))


def id_order(entity_id: str) -> tuple[int, int, str]:
    """QuickBooks Ids are numbers written as text: compare them as numbers."""
    return (0, int(entity_id), "") if entity_id.isdigit() else (1, 0, entity_id)


def status_matches(status: InvoiceStatus, balance: float) -> bool:
    """open: something is still owed; paid: nothing is; all: either."""
    if status == "open":
        return balance > 0
    if status == "paid":
        return balance == 0
    return True


def text_matches(q: str | None, doc_number: str | None, descriptions: Iterable[str]) -> bool:
    """`q` is a case-insensitive substring of the document number or of a line's
    description; no `q` (None or empty) matches every invoice."""
    if not q:
        return True
    wanted = fold(q)
    candidates = [doc_number or "", *descriptions]
    return any(wanted in fold(text) for text in candidates)
