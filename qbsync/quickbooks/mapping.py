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

from qbsync.domain.fields import Address, FieldName, FieldValue, SyncedFields, text_value
from schemas import CustomerRecord
from schemas.encoding import message_json

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
    get = customer.get  # an import maps 100,000 of these: every lookup counts
    deleted = get("status") == "Deleted"
    parent = get("ParentRef") or {}
    phone = get("PrimaryPhone")
    website = get("WebAddr")
    email = get("PrimaryEmailAddr")
    metadata = get("MetaData")
    return {
        "realm_id": realm_id,
        "customer_id": str(customer["Id"]).strip(),  # the key agrees with the record
        "display_name": get("DisplayName") or "",
        "active": bool(get("Active", True)) and not deleted,
        "deleted": deleted,
        "merged_into": None,
        "parent_id": parent.get("value") if get("Job") or parent else None,
        "sync_token": get("SyncToken"),
        "address": _address_parts(get("BillAddr")),
        "phone": text_value(phone.get("FreeFormNumber")) if phone else None,
        "website": text_value(website.get("URI")) if website else None,
        "email": email.get("Address") if email else None,
        "last_updated": _parse_time(metadata.get("LastUpdatedTime")) if metadata else None,
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
    record's JSON, the same bytes as `customer_record(...).model_dump_json()` at orjson's cost
    (the import's per-customer cost, see `message_json`)."""
    values = customer_values(realm_id, customer, source=source, firm_id=firm_id, run_id=run_id)
    return f"{realm_id}:{values['customer_id']}", message_json(CustomerRecord, values)


def _address_parts(bill_addr: Any) -> dict[str, str | None] | None:
    """BillAddr as the record's address parts, each normalised like `Address.parse`."""
    if not bill_addr:
        return None
    parts = {ours: text_value(bill_addr.get(theirs)) for ours, theirs in _ADDRESS_PARTS.items()}
    return parts if any(parts.values()) else None
