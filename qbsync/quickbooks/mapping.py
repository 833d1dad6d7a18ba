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
from schemas import Address as AddressMessage
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
    if not bill_addr:
        return None
    return Address.parse({ours: bill_addr.get(theirs) for ours, theirs in _ADDRESS_PARTS.items()})


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


def customer_record(
    realm_id: str,
    customer: Mapping[str, Any],
    *,
    source: str = "import",
    firm_id: str | None = None,
    run_id: str | None = None,
) -> CustomerRecord:
    """The `qbo.customers` record of a QuickBooks Customer JSON object (or a CDC tombstone,
    which carries `status: "Deleted"` and little else)."""
    fields = synced_fields_from_qbo(customer)
    deleted = customer.get("status") == "Deleted"
    parent = customer.get("ParentRef") or {}
    return CustomerRecord.model_validate(
        {
            "realm_id": realm_id,
            "customer_id": str(customer["Id"]),
            "display_name": customer.get("DisplayName") or "",
            "active": bool(customer.get("Active", True)) and not deleted,
            "deleted": deleted,
            "parent_id": parent.get("value") if customer.get("Job") or parent else None,
            "sync_token": customer.get("SyncToken"),
            "address": AddressMessage(**fields.address.as_dict()) if fields.address else None,
            "phone": fields.phone,
            "website": fields.website,
            "email": (customer.get("PrimaryEmailAddr") or {}).get("Address"),
            "last_updated": _parse_time((customer.get("MetaData") or {}).get("LastUpdatedTime")),
            "firm_id": firm_id,
            "run_id": run_id,
            "source": source,
        }
    )
