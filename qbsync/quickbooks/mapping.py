"""QuickBooks Customer JSON <-> the project's records and synced fields.

| Liscio                                   | QuickBooks Customer                         |
| address.line1, line2, city, state,       | BillAddr.Line1, Line2, City,                |
|   postal_code, country                   |   CountrySubDivisionCode, PostalCode, Country|
| phone                                    | PrimaryPhone.FreeFormNumber                 |
| website                                  | WebAddr.URI                                 |
| name (only when created)                 | DisplayName                                 |
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from qbsync.domain.fields import Address, FieldName, FieldValue, SyncedFields, text_value
from schemas import CustomerRecord

_ADDRESS_PARTS = {
    "line1": "Line1",
    "line2": "Line2",
    "city": "City",
    "state": "CountrySubDivisionCode",
    "postal_code": "PostalCode",
    "country": "Country",
}


def address_from_qbo(bill_addr: Mapping[str, Any] | None) -> Address | None:
    parts = _address_parts(bill_addr)
    return Address(**parts) if parts else None


def address_to_qbo(address: Address) -> dict[str, str]:
    parts = address.as_dict()
    return {theirs: value for ours, theirs in _ADDRESS_PARTS.items() if (value := parts[ours])}


def synced_fields_from_qbo(customer: Mapping[str, Any]) -> SyncedFields:
    return SyncedFields(
        address_from_qbo(customer.get("BillAddr")),
        text_value((customer.get("PrimaryPhone") or {}).get("FreeFormNumber")),
        text_value((customer.get("WebAddr") or {}).get("URI")),
    )


def fields_to_qbo(values: Mapping[FieldName, FieldValue]) -> dict[str, Any]:
    """The sparse-update body for the given synced fields (values are never None here:
    the sync rules never clear a QuickBooks value)."""
    body: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "address":
            assert isinstance(value, Address)
            body["BillAddr"] = address_to_qbo(value)
        elif name == "phone":
            body["PrimaryPhone"] = {"FreeFormNumber": value}
        elif name == "website":
            body["WebAddr"] = {"URI": value}
    return body


def new_customer_body(display_name: str, fields: SyncedFields) -> dict[str, Any]:
    """A create: the name is written only here, never on updates."""
    body = {"DisplayName": display_name}
    body.update(
        fields_to_qbo({"address": fields.address, "phone": fields.phone, "website": fields.website})
    )
    return body


def _parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


_SOURCES = frozenset({"import", "cdc", "webhook", "write"})


def customer_values(
    realm_id: str,
    customer: Mapping[str, Any],
    *,
    source: str = "import",
    firm_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The `qbo.customers` record of a QuickBooks Customer JSON object (or a CDC tombstone,
    which carries `status: "Deleted"` and little else): the record's fields in the schema's
    order, with JSON values (`last_updated` a datetime). The one mapping of a customer;
    `customer_record` validates it into the model, `customer_message` encodes it."""
    deleted = customer.get("status") == "Deleted"
    parent = customer.get("ParentRef") or {}
    return {
        "realm_id": realm_id,
        "customer_id": str(customer["Id"]),
        "display_name": customer.get("DisplayName") or "",
        "active": bool(customer.get("Active", True)) and not deleted,
        "deleted": deleted,
        "merged_into": None,
        "parent_id": parent.get("value") if customer.get("Job") or parent else None,
        "sync_token": customer.get("SyncToken"),
        "address": _address_parts(customer.get("BillAddr")),
        "phone": text_value((customer.get("PrimaryPhone") or {}).get("FreeFormNumber")),
        "website": text_value((customer.get("WebAddr") or {}).get("URI")),
        "email": (customer.get("PrimaryEmailAddr") or {}).get("Address"),
        "last_updated": _parse_time((customer.get("MetaData") or {}).get("LastUpdatedTime")),
        "firm_id": firm_id,
        "run_id": run_id,
        "source": source,
    }


def customer_record(
    realm_id: str,
    customer: Mapping[str, Any],
    *,
    source: str = "import",
    firm_id: str | None = None,
    run_id: str | None = None,
) -> CustomerRecord:
    """The `qbo.customers` record of a customer as the model (see `customer_values`)."""
    return CustomerRecord.model_validate(
        customer_values(realm_id, customer, source=source, firm_id=firm_id, run_id=run_id)
    )


def customer_message(
    realm_id: str,
    customer: Mapping[str, Any],
    *,
    source: str = "import",
    firm_id: str | None = None,
    run_id: str | None = None,
) -> tuple[str, bytes]:
    """The `qbo.customers` message of a customer: its key (`realm_id:customer_id`) and the
    record's JSON, the same bytes as `customer_record(...).model_dump_json()`. Values the
    model would accept as they are go straight to orjson (a few µs, the import's per-customer
    cost); anything else (an id with spaces, a number where text belongs) goes through the
    model, which normalises it or raises its ValidationError exactly as before."""
    values = customer_values(realm_id, customer, source=source, firm_id=firm_id, run_id=run_id)
    customer_id: str = values["customer_id"]
    if _valid_as_is(values):
        try:
            return f"{realm_id}:{customer_id}", orjson.dumps(values, option=orjson.OPT_UTC_Z)
        except orjson.JSONEncodeError:  # e.g. a lone surrogate: the model decides
            pass
    record = CustomerRecord.model_validate(values)
    return f"{realm_id}:{record.customer_id}", record.model_dump_json().encode()


def _address_parts(bill_addr: Any) -> dict[str, str | None] | None:
    """BillAddr as the record's address parts, each normalised like `Address.parse`."""
    if not bill_addr:
        return None
    parts = {ours: text_value(bill_addr.get(theirs)) for ours, theirs in _ADDRESS_PARTS.items()}
    return parts if any(parts.values()) else None


def _is_id(value: object) -> bool:
    """What the schema's NonEmptyId keeps unchanged: text, non-empty, no outer spaces."""
    return type(value) is str and value != "" and value == value.strip()


def _is_text(value: object) -> bool:
    return value is None or type(value) is str


def _valid_as_is(values: Mapping[str, Any]) -> bool:
    """Whether CustomerRecord would accept `values` without changing any (so its JSON is
    orjson's). Values `customer_values` always makes right (booleans, the normalised address,
    phone and website, the parsed time) are not checked again."""
    return (
        _is_id(values["realm_id"])
        and _is_id(values["customer_id"])
        and type(values["display_name"]) is str
        and _is_text(values["parent_id"])
        and _is_text(values["sync_token"])
        and _is_text(values["email"])
        and _is_text(values["firm_id"])
        and _is_text(values["run_id"])
        and values["source"] in _SOURCES
    )
