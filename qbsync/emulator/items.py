"""Items (products and services) with QuickBooks' rules: Name required and unique among
items ignoring case (6240 otherwise), a Type, and an income account for what is sold
(Service, NonInventory, Inventory) that names an existing account."""

from __future__ import annotations

from qbsync.emulator import versions
from qbsync.emulator.entities import ACCOUNT, ITEM_BODY, ITEM_WRITABLE
from qbsync.emulator.errors import (
    QboFault,
    invalid_property,
    invalid_reference,
    required_missing,
)
from qbsync.emulator.realm import JsonObject, Realm, name_key

ITEM_TYPES = ("Service", "NonInventory", "Inventory", "Category", "Group")
_SOLD = ("Service", "NonInventory", "Inventory")
MAX_NAME = 100


def _name(realm: Realm, item_id: str, fields: JsonObject) -> str:
    """The item's name, tidied; raises 6240 when another item has it (ignoring case)."""
    given = fields.get("Name")
    if given is None:
        raise required_missing("Name", element="Name")
    name = " ".join(str(given).split())
    if len(name) > MAX_NAME or ":" in name:
        raise QboFault(
            "6000",
            "A business validation error has occurred while processing your request",
            f"Business Validation Error: Name must be at most {MAX_NAME} characters, no colon.",
            element="Name",
        )
    for other in realm.items.rows.values():
        if other["Id"] != item_id and name_key(other["Name"]) == name_key(name):
            raise QboFault(
                "6240",
                "Duplicate Name Exists Error",
                f"The name supplied already exists. : Id={other['Id']}",
                element="Name",
            )
    return name


def _account_ref(realm: Realm, fields: JsonObject, key: str) -> JsonObject | None:
    ref = fields.pop(key, None)
    if ref is None:
        return None
    account = realm.accounts.rows.get(str(ref.get("value")))
    if account is None or not account["Active"]:
        raise invalid_reference(ACCOUNT, str(ref.get("value")))
    return {"value": account["Id"], "name": account["Name"]}


def _assemble(
    realm: Realm, item_id: str, fields: JsonObject, previous: JsonObject | None, at: float
) -> JsonObject:
    name = _name(realm, item_id, fields)
    item_type = fields.pop("Type", None) or (previous or {}).get("Type")
    if item_type is None:
        raise required_missing("Type", element="Type")
    if item_type not in ITEM_TYPES:
        raise invalid_property(f"Type ({item_type} is not one of {', '.join(ITEM_TYPES)})")
    income = _account_ref(realm, fields, "IncomeAccountRef")
    if income is None and item_type in _SOLD:
        raise required_missing("IncomeAccountRef", element="IncomeAccountRef")
    fields.pop("Name")
    active = fields.pop("Active", True)
    if not active and (previous is None or previous["Active"]):
        # QuickBooks renames an item it makes inactive, which frees the name for a new one.
        name = f"{name} (deleted)"
    row: JsonObject = {
        "Name": name,
        "Active": active,
        "FullyQualifiedName": name,
        "Taxable": fields.pop("Taxable", False),
        "UnitPrice": fields.pop("UnitPrice", 0),
        "Type": item_type,
        "PurchaseCost": fields.pop("PurchaseCost", 0),
        "TrackQtyOnHand": fields.pop("TrackQtyOnHand", False),
        "domain": "QBO",
        "sparse": False,
        "Id": item_id,
        **versions.next_version(previous, at),
    }
    if income is not None:
        row["IncomeAccountRef"] = income
    expense = _account_ref(realm, fields, "ExpenseAccountRef")
    if expense is not None:
        row["ExpenseAccountRef"] = expense
    for key, value in fields.items():
        row.setdefault(key, value)
    return row


_WRITES = versions.Writes(
    ITEM_BODY,
    ITEM_WRITABLE,
    lambda realm: realm.items,
    _assemble,
    versions.keep(lambda realm: realm.items),
)
read, create, update = _WRITES.read, _WRITES.create, _WRITES.update
