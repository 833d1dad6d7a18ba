"""Customer writes with QuickBooks' rules: SyncToken versions, case-insensitive unique
DisplayName (shared with vendors and employees), sub-customers, deactivation, merges."""

from __future__ import annotations

from typing import Any

from qbsync.emulator import clock, versions
from qbsync.emulator.entities import CUSTOMER, CUSTOMER_BODY, CUSTOMER_WRITABLE
from qbsync.emulator.errors import (
    QboFault,
    business_rule,
    duplicate_name,
    invalid_property,
    invalid_reference,
    object_not_found,
    required_missing,
)
from qbsync.emulator.realm import JsonObject, NameOwner, Realm, name_key

_NAME_PARTS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")
_ADDRESSES = ("BillAddr", "ShipAddr")
MAX_DISPLAY_NAME = 500


def validate_body(body: Any) -> JsonObject:
    """The request body with null and empty values left out; raises QboFault 2010."""
    normalized = CUSTOMER_BODY.normalize(body, "")
    return normalized or {}


def is_sparse(body: JsonObject) -> bool:
    return bool(validate_body({"sparse": body.get("sparse")}).get("sparse"))


def read(realm: Realm, customer_id: str) -> JsonObject:
    row = realm.customers.rows.get(customer_id)
    if row is None:
        raise object_not_found(CUSTOMER, customer_id)
    return row


def create(realm: Realm, body: Any, at: float, *, operation: str = "Create") -> JsonObject:
    fields = _writable(validate_body(body))
    customer_id = realm.customers.allocate_id()
    row = _assemble(realm, customer_id, fields, previous=None, at=at)
    _store(realm, row, previous=None)
    realm.changed(CUSTOMER, customer_id, operation, at)
    return row


def update(realm: Realm, body: Any, at: float) -> JsonObject:
    """POST /customer with an Id: sparse when `sparse` is true, otherwise a full update
    (writable fields left out are cleared; Active stays as it was)."""
    previous, fields = versions.update_of(
        body, CUSTOMER_BODY, CUSTOMER_WRITABLE, lambda customer_id: read(realm, customer_id)
    )
    return _write_update(realm, previous, fields, at, "Update")


def user_edit(realm: Realm, customer_id: str, changes: Any, at: float) -> JsonObject:
    """A change made in QuickBooks by a person: no SyncToken needed; null clears a field."""
    if not isinstance(changes, dict):
        raise invalid_property("body (expected an object of Customer fields)")
    unknown = [key for key in changes if key not in CUSTOMER_WRITABLE]
    if unknown:
        raise invalid_property(f'Unrecognized field "{unknown[0]}" (class Customer)')
    previous = read(realm, customer_id)
    normalized = validate_body(changes)
    fields = _writable(previous)
    for key in changes:
        if key in normalized:
            fields[key] = normalized[key]
        else:
            fields.pop(key, None)
    return _write_update(realm, previous, fields, at, "Update")


def merge(realm: Realm, from_id: str, into_id: str, at: float) -> JsonObject:
    """Merge one customer into another, as QuickBooks does when a user renames a customer
    to another's name: the first is deleted (CDC shows it with status Deleted)."""
    if from_id == into_id:
        raise business_rule(
            "6000",
            "A business validation error has occurred",
            "Cannot merge a customer into itself",
        )
    merged_away = read(realm, from_id)
    survivor = read(realm, into_id)
    for invoice in realm.invoices.rows.values():
        if invoice.get("CustomerRef", {}).get("value") == from_id:
            invoice["CustomerRef"] = {"value": into_id, "name": survivor["DisplayName"]}
    for child in list(realm.customers.rows.values()):
        if child.get("ParentRef", {}).get("value") == from_id:
            child["ParentRef"] = {"value": into_id}
    del realm.customers.rows[from_id]
    realm.names.pop(name_key(merged_away["DisplayName"]), None)
    realm.customers.deleted[from_id] = {
        "domain": "QBO",
        "status": "Deleted",
        "Id": from_id,
        "MetaData": {"LastUpdatedTime": clock.metadata_time(at)},
    }
    survivor = dict(survivor)
    survivor["Balance"] = survivor.get("Balance", 0) + merged_away.get("Balance", 0)
    survivor["BalanceWithJobs"] = survivor["Balance"]
    survivor["SyncToken"] = str(int(survivor["SyncToken"]) + 1)
    survivor["MetaData"] = {**survivor["MetaData"], "LastUpdatedTime": clock.metadata_time(at)}
    realm.customers.rows[into_id] = survivor
    _refresh_descendants(realm, into_id)
    realm.customers.record_change(from_id, at)
    realm.changed(CUSTOMER, into_id, "Merge", at, deleted_id=from_id)
    return survivor


def _write_update(
    realm: Realm, previous: JsonObject, fields: JsonObject, at: float, operation: str
) -> JsonObject:
    row = _assemble(realm, previous["Id"], fields, previous=previous, at=at)
    _store(realm, row, previous=previous)
    realm.changed(CUSTOMER, row["Id"], operation, at)
    return row


def _writable(source: JsonObject) -> JsonObject:
    return versions.writable(source, CUSTOMER_WRITABLE)


def _display_name(fields: JsonObject) -> str:
    given = fields.get("DisplayName")
    if given is not None:
        name = " ".join(str(given).split())
    else:
        name = " ".join(str(fields[part]).strip() for part in _NAME_PARTS if part in fields)
    if not name:
        raise required_missing(
            "Either DisplayName or one of Title, GivenName, MiddleName, FamilyName, Suffix",
            element="DisplayName",
        )
    if len(name) > MAX_DISPLAY_NAME:
        raise QboFault(
            "6000",
            "A business validation error has occurred while processing your request",
            f"Business Validation Error: DisplayName is longer than {MAX_DISPLAY_NAME} characters",
            element="DisplayName",
        )
    if ":" in name:
        raise QboFault(
            "6000",
            "A business validation error has occurred while processing your request",
            "Business Validation Error: The name can't contain a colon (:).",
            element="DisplayName",
        )
    return name


def _assemble(
    realm: Realm, customer_id: str, fields: JsonObject, previous: JsonObject | None, at: float
) -> JsonObject:
    """The stored (and returned) form of a customer from its writable fields."""
    display_name = _display_name(fields)
    owner = realm.name_owner(display_name)
    if owner is not None and owner != NameOwner(CUSTOMER, customer_id):
        raise duplicate_name(owner.entity_id)
    fields["DisplayName"] = display_name
    parent = _parent(realm, customer_id, fields)
    for address in _ADDRESSES:
        if address in fields:
            kept_id = (previous or {}).get(address, {}).get("Id")
            given = {key: value for key, value in fields[address].items() if key != "Id"}
            fields[address] = {"Id": kept_id or realm.allocate_address_id(), **given}
    row: JsonObject = {
        "Taxable": fields.pop("Taxable", False),
        "Job": parent is not None,
        "BillWithParent": fields.pop("BillWithParent", False) if parent is not None else False,
        "Balance": (previous or {}).get("Balance", 0),
        "BalanceWithJobs": (previous or {}).get("BalanceWithJobs", 0),
        "CurrencyRef": fields.pop("CurrencyRef", None)
        or {"value": "USD", "name": "United States Dollar"},
        "PreferredDeliveryMethod": fields.pop("PreferredDeliveryMethod", "Print"),
        "IsProject": False,
        "domain": "QBO",
        "sparse": False,
        "Id": customer_id,
        **versions.next_version(previous, at),
        "FullyQualifiedName": display_name
        if parent is None
        else f"{parent['FullyQualifiedName']}:{display_name}",
        "DisplayName": display_name,
        "PrintOnCheckName": fields.pop("PrintOnCheckName", display_name),
        "Active": fields.pop("Active", True),
    }
    fields.pop("Job", None)
    if parent is not None:
        row["ParentRef"] = {"value": parent["Id"]}
        row["Level"] = parent.get("Level", 0) + 1
    fields.pop("ParentRef", None)
    for key, value in fields.items():
        row.setdefault(key, value)
    return row


def _parent(realm: Realm, customer_id: str, fields: JsonObject) -> JsonObject | None:
    ref = fields.get("ParentRef")
    if ref is None:
        return None
    parent_id = ref.get("value")
    if parent_id is None:
        raise required_missing("ParentRef.value", element="ParentRef")
    parent = realm.customers.rows.get(parent_id)
    if parent is None:
        raise invalid_reference(CUSTOMER, parent_id)
    if parent_id == customer_id or _is_descendant(realm, parent_id, customer_id):
        raise QboFault(
            "6000",
            "A business validation error has occurred while processing your request",
            "Business Validation Error: A customer cannot be its own parent.",
            element="ParentRef",
        )
    if not parent["Active"]:
        raise object_not_found(CUSTOMER, parent_id)
    return parent


def _is_descendant(realm: Realm, candidate_id: str, ancestor_id: str) -> bool:
    current = realm.customers.rows.get(candidate_id)
    while current is not None and "ParentRef" in current:
        parent_id = current["ParentRef"]["value"]
        if parent_id == ancestor_id:
            return True
        current = realm.customers.rows.get(parent_id)
    return False


def _store(realm: Realm, row: JsonObject, previous: JsonObject | None) -> None:
    if previous is not None:
        realm.names.pop(name_key(previous["DisplayName"]), None)
    realm.names[name_key(row["DisplayName"])] = NameOwner(CUSTOMER, row["Id"])
    realm.customers.rows[row["Id"]] = row
    if previous is not None and previous["FullyQualifiedName"] != row["FullyQualifiedName"]:
        _refresh_descendants(realm, row["Id"])


def _refresh_descendants(realm: Realm, parent_id: str) -> None:
    """Keep sub-customers' FullyQualifiedName and Level in step with their parent."""
    parent = realm.customers.rows[parent_id]
    for child in realm.customers.rows.values():
        if child.get("ParentRef", {}).get("value") == parent_id:
            child["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{child['DisplayName']}"
            child["Level"] = parent.get("Level", 0) + 1
            _refresh_descendants(realm, child["Id"])


def insert_trusted(realm: Realm, fields: JsonObject, at: float) -> JsonObject:
    """Create a customer from already-valid fields without telling webhook listeners:
    the seeding path, fast enough for 100,000 customers in a few seconds."""
    customer_id = realm.customers.allocate_id()
    row = _assemble(realm, customer_id, dict(fields), previous=None, at=at)
    _store(realm, row, previous=None)
    realm.customers.record_change(customer_id, at)
    return row
