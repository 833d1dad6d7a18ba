"""The invoice rules of qbsync/domain/invoices.py: whom an invoice for a contact is made out
to, and which invoices a search and a status filter keep."""

from __future__ import annotations

import itertools

import pytest

from qbsync.domain.invoices import (
    InvoiceAddressee,
    Person,
    addressee,
    full_name,
    individual_name,
    status_matches,
    text_matches,
)

ACME = Person("10", "Acme Ltd", "Grace", "Hopper")
COMPANY_ONLY = Person("11", "Bolt Inc")


def sub(
    customer_id: str,
    display: str,
    given: str | None = None,
    family: str | None = None,
    active: bool = True,
) -> Person:
    return Person(customer_id, display, given, family, active)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("Ada", "Lovelace"), "Ada Lovelace"),
        ((" Ada ", "  Lovelace"), "Ada Lovelace"),
        (("Ada  Augusta", "King"), "Ada Augusta King"),
        (("Ada", None), "Ada"),
        ((None, "Lovelace"), "Lovelace"),
        (("", "  "), None),
        ((None, None), None),
    ],
)
def test_full_name_joins_the_parts_that_have_a_value(
    parts: tuple[str | None, str | None], expected: str | None
) -> None:
    assert full_name(*parts) == expected


def test_individual_name_is_given_and_family_name() -> None:
    assert individual_name(ACME) == "Grace Hopper"
    assert individual_name(COMPANY_ONLY) is None
    assert individual_name(Person("1", "X", None, "Hopper")) == "Hopper"


def test_the_linked_customers_individual_is_the_contact() -> None:
    assert addressee("Grace", "Hopper", ACME, []) == InvoiceAddressee("10", "Grace Hopper")
    # equal ignoring case and spacing; the contact's own spelling is the one shown
    assert addressee("grace ", " HOPPER", ACME, []) == InvoiceAddressee("10", "grace HOPPER")


def test_a_sub_customer_with_the_contacts_name_becomes_the_invoices_customer() -> None:
    subs = [sub("20", "Job 1", "Someone", "Else"), sub("21", "Ada Lovelace", "Ada", "Lovelace")]
    assert addressee("Ada", "Lovelace", ACME, subs) == InvoiceAddressee("21", "Ada Lovelace")


def test_a_sub_customer_is_known_by_its_display_name_too() -> None:
    subs = [sub("22", "ada lovelace")]  # no individual name, the display name is the person's
    assert addressee("Ada", "Lovelace", ACME, subs) == InvoiceAddressee("22", "Ada Lovelace")


def test_the_linked_customer_wins_over_a_sub_customer_of_the_same_name() -> None:
    subs = [sub("23", "Grace Hopper", "Grace", "Hopper")]
    assert addressee("Grace", "Hopper", ACME, subs) == InvoiceAddressee("10", "Grace Hopper")


def test_of_several_sub_customers_with_the_name_the_lowest_id_wins() -> None:
    subs = [
        sub("103", "Ada Lovelace"),
        sub("25", "Ada L.", "Ada", "Lovelace"),
        sub("9", "ADA LOVELACE"),
    ]
    for order in itertools.permutations(subs):
        assert addressee("Ada", "Lovelace", ACME, order) == InvoiceAddressee("9", "Ada Lovelace")


def test_an_inactive_sub_customer_is_never_chosen() -> None:
    subs = [sub("24", "Ada Lovelace", "Ada", "Lovelace", active=False)]
    assert addressee("Ada", "Lovelace", ACME, subs) == InvoiceAddressee("10", "Grace Hopper")


def test_an_unknown_contact_gets_the_individual_on_the_linked_customer() -> None:
    subs = [sub("20", "Job 1", "Someone", "Else")]
    assert addressee("Ada", "Lovelace", ACME, subs) == InvoiceAddressee("10", "Grace Hopper")
    # a part of the name is not the name
    assert addressee("Grace", None, ACME, subs) == InvoiceAddressee("10", "Grace Hopper")
    assert addressee("Ada", None, ACME, [sub("26", "Ada Lovelace")]) == InvoiceAddressee(
        "10", "Grace Hopper"
    )


def test_a_company_without_an_individual_names_nobody_for_an_unknown_contact() -> None:
    assert addressee("Ada", "Lovelace", COMPANY_ONLY, []) == InvoiceAddressee("11", None)
    # but a contact QuickBooks knows is still named
    subs = [sub("27", "Ada Lovelace", "Ada", "Lovelace")]
    assert addressee("Ada", "Lovelace", COMPANY_ONLY, subs) == InvoiceAddressee(
        "27", "Ada Lovelace"
    )


def test_a_contact_without_a_name_gets_the_individual_on_the_linked_customer() -> None:
    nameless = Person("12", "Nameless Co", None, None)
    subs = [sub("28", "Someone", None, None)]
    assert addressee(None, None, ACME, subs) == InvoiceAddressee("10", "Grace Hopper")
    assert addressee("", " ", nameless, subs) == InvoiceAddressee("12", None)


def test_the_linked_customer_listed_among_its_sub_customers_is_not_a_sub_customer() -> None:
    itself = Person("10", "Ada Lovelace", None, None)
    assert addressee("Ada", "Lovelace", itself, [itself]) == InvoiceAddressee("10", None)


@pytest.mark.parametrize(
    ("status", "balance", "kept"),
    [
        ("open", 10.0, True),
        ("open", 0.01, True),
        ("open", 0.0, False),
        ("paid", 0.0, True),
        ("paid", 0.01, False),
        ("all", 0.0, True),
        ("all", 99.5, True),
    ],
)
def test_status_filters_on_the_balance(status: str, balance: float, kept: bool) -> None:
    assert status_matches(status, balance) is kept  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("q", "kept"),
    [
        (None, True),
        ("", True),
        ("1001", True),
        ("00", True),
        ("TAX", True),
        ("return prep", True),
        ("bookkeeping", True),
        ("Ünïcödé", True),
        ("ÜNÏCÖDÉ", True),
        ("1002", False),
        ("audit", False),
        ("'; DROP TABLE invoices; --", False),
    ],
)
def test_q_is_a_case_insensitive_substring_of_the_number_or_a_description(
    q: str | None, kept: bool
) -> None:
    descriptions = ["Tax return preparation", "Monthly Bookkeeping", "ünïcödé"]
    assert text_matches(q, "1001", descriptions) is kept


def test_q_on_an_invoice_without_number_or_descriptions() -> None:
    assert text_matches("x", None, []) is False
    assert text_matches(None, None, []) is True
