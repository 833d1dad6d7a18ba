"""`customer_message` (orjson, the import's and CDC's path) writes exactly the bytes of the
model's JSON (`customer_record(...).model_dump_json()`), the `qbo.customers` contract."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from qbsync.quickbooks import mapping
from qbsync.quickbooks.mapping import customer_message, customer_record
from schemas import CustomerRecord

REALM = "9341455000000001"

FULL: dict[str, Any] = {
    "Id": "42",
    "SyncToken": "3",
    "DisplayName": 'Ocean\'s "Best" Café / 海 😀',
    "CompanyName": "Ocean",
    "Active": True,
    "Job": False,
    "BillAddr": {
        "Id": "7",
        "Line1": "12 Ocean Dr.",
        "Line2": "Suite 4",
        "City": "Half Moon Bay",
        "CountrySubDivisionCode": "CA",
        "PostalCode": "94213",
        "Country": "US",
    },
    "PrimaryPhone": {"FreeFormNumber": "(415) 444-6538"},
    "WebAddr": {"URI": "https://ocean.example"},
    "PrimaryEmailAddr": {"Address": "hi@ocean.example"},
    "MetaData": {
        "CreateTime": "2026-10-01T09:00:00-07:00",
        "LastUpdatedTime": "2026-10-16T12:57:18-07:00",
    },
    "Balance": 12.5,
    "domain": "QBO",
}

VARIANTS: dict[str, dict[str, Any]] = {
    "full": FULL,
    "only an id": {"Id": "1"},
    "numeric id": {"Id": 77, "DisplayName": "N"},
    "inactive": {**FULL, "Active": False},
    "null display name": {**FULL, "DisplayName": None},
    "address partial": {**FULL, "BillAddr": {"Line1": " 1 Main St ", "City": "Springfield"}},
    "address of blanks": {**FULL, "BillAddr": {"Id": "9", "Line1": "   ", "City": ""}},
    "address empty": {**FULL, "BillAddr": {}},
    "address with a number": {**FULL, "BillAddr": {"PostalCode": 62701}},
    "blank phone and website": {
        **FULL,
        "PrimaryPhone": {"FreeFormNumber": "  "},
        "WebAddr": {"URI": None},
    },
    "phone as a number": {**FULL, "PrimaryPhone": {"FreeFormNumber": 4155550100}},
    "empty phone and email objects": {**FULL, "PrimaryPhone": {}, "PrimaryEmailAddr": {}},
    "sub-customer": {**FULL, "Job": True, "ParentRef": {"value": "40"}, "Level": 1},
    "job without a parent": {**FULL, "Job": True},
    "parent without job": {**FULL, "ParentRef": {"value": "40"}},
    "CDC tombstone (deleted or merged away)": {
        "Id": "43",
        "status": "Deleted",
        "domain": "QBO",
        "MetaData": {"LastUpdatedTime": "2026-10-17T08:00:00-07:00"},
    },
    "time in UTC with Z": {**FULL, "MetaData": {"LastUpdatedTime": "2026-10-16T19:57:18Z"}},
    "time +00:00 with a fraction": {
        **FULL,
        "MetaData": {"LastUpdatedTime": "2026-10-16T19:57:18.120+00:00"},
    },
    "time without an offset": {**FULL, "MetaData": {"LastUpdatedTime": "2026-10-16T12:57:18"}},
    "time unreadable": {**FULL, "MetaData": {"LastUpdatedTime": "yesterday"}},
    "time not text": {**FULL, "MetaData": {"LastUpdatedTime": 1700000000}},
    "no metadata": {**{k: v for k, v in FULL.items() if k != "MetaData"}},
    "control characters": {**FULL, "DisplayName": "tab\there\x00\x1f\x7f\u2028 end"},
    "id with spaces (the model strips them)": {**FULL, "Id": " 42 "},
}


def model_message(customer: dict[str, Any], **context: Any) -> tuple[str, bytes]:
    """What the importer sent before the fast path: the validated model's JSON."""
    record = customer_record(REALM, customer, **context)
    return f"{REALM}:{record.customer_id}", record.model_dump_json().encode()


CONTEXTS: list[dict[str, Any]] = [
    {"source": "import", "firm_id": "firm-1", "run_id": "run-1"},
    {"source": "cdc", "firm_id": "firm-1"},
    {"source": "webhook"},
    {"source": "write", "firm_id": "firm-2"},
]


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda c: str(c["source"]))
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_fast_path_writes_the_models_bytes(name: str, context: dict[str, Any]) -> None:
    customer = VARIANTS[name]
    assert customer_message(REALM, customer, **context) == model_message(customer, **context)


def test_the_bytes_are_a_valid_customer_record() -> None:
    key, value = customer_message(REALM, FULL, firm_id="f", run_id="r")
    record = CustomerRecord.model_validate_json(value)
    assert key == f"{REALM}:42"
    assert record.address is not None and record.address.line2 == "Suite 4"
    assert record.last_updated is not None and record.last_updated.utcoffset() is not None


def random_customer(rng: random.Random, number: int) -> dict[str, Any]:
    """A customer with a random subset of the fields, some of them blank."""
    customer: dict[str, Any] = {"Id": str(number)}

    def text() -> str | None:
        return rng.choice([None, "", "  ", "x", f" Value {number} ", "É ü 😀"])

    if rng.random() < 0.9:
        customer["DisplayName"] = text()
    if rng.random() < 0.5:
        customer["Active"] = rng.random() < 0.7
    if rng.random() < 0.3:
        customer["Job"] = rng.random() < 0.5
    if rng.random() < 0.3:
        customer["ParentRef"] = {"value": str(rng.randrange(1, number + 1))}
    if rng.random() < 0.6:
        customer["BillAddr"] = {
            key: text()
            for key in ("Line1", "Line2", "City", "CountrySubDivisionCode", "PostalCode")
            if rng.random() < 0.5
        }
    if rng.random() < 0.5:
        customer["PrimaryPhone"] = {"FreeFormNumber": text()}
    if rng.random() < 0.5:
        customer["WebAddr"] = {"URI": text()}
    if rng.random() < 0.3:
        customer["PrimaryEmailAddr"] = {"Address": f"c{number}@example.com"}
    if rng.random() < 0.8:
        customer["SyncToken"] = str(rng.randrange(10))
        customer["MetaData"] = {
            "LastUpdatedTime": rng.choice(
                ["2026-10-16T12:57:18-07:00", "2026-01-02T03:04:05.678+05:30", "2026-10-16Z"]
            )
        }
    if rng.random() < 0.05:
        customer["status"] = "Deleted"
    return customer


def test_random_customers_match_too() -> None:
    rng = random.Random(20261125)
    for number in range(1, 2001):
        customer = random_customer(rng, number)
        context = rng.choice(CONTEXTS)
        assert customer_message(REALM, customer, **context) == model_message(customer, **context)


@pytest.mark.parametrize(
    "customer",
    [
        {**FULL, "Id": "  "},
        {**FULL, "SyncToken": 3},
        {**FULL, "DisplayName": 12},
        {**FULL, "PrimaryEmailAddr": {"Address": 5}},
        {**FULL, "ParentRef": {"value": 40}},
    ],
    ids=["blank id", "numeric SyncToken", "numeric name", "numeric email", "numeric parent"],
)
def test_what_the_model_refuses_is_refused_the_same_way(customer: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        customer_record(REALM, customer)
    with pytest.raises(ValidationError):
        customer_message(REALM, customer)


def test_a_lone_surrogate_is_left_to_the_model() -> None:
    customer = {**FULL, "DisplayName": "broken \ud800"}
    try:
        expected: object = model_message(customer)
    except Exception as exc:  # the model refuses it: so must the fast path
        with pytest.raises(type(exc)):
            customer_message(REALM, customer)
        return
    assert customer_message(REALM, customer) == expected


def test_ordinary_customers_do_not_go_through_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the fast path validated through the model")

    monkeypatch.setattr(mapping.CustomerRecord, "model_validate", refuse)
    for name in ("full", "sub-customer", "CDC tombstone (deleted or merged away)", "inactive"):
        customer_message(REALM, VARIANTS[name], firm_id="f", run_id="r")
