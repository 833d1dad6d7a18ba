"""Invoices: create (and update) with QuickBooks' rules for customer and item references,
line numbering, totals and document numbers; the customer's balance follows."""

from __future__ import annotations

import copy

from qbsync.emulator import clock, versions
from qbsync.emulator.entities import CUSTOMER, INVOICE, INVOICE_BODY, INVOICE_WRITABLE, ITEM
from qbsync.emulator.errors import (
    invalid_property,
    invalid_reference,
    object_not_found,
    required_missing,
)
from qbsync.emulator.realm import JsonObject, Realm

SALES_ITEM = "SalesItemLineDetail"
PAYMENT_TERM_DAYS = 30


def _customer(realm: Realm, fields: JsonObject) -> JsonObject:
    ref = fields.get("CustomerRef")
    if ref is None or ref.get("value") is None:
        raise required_missing("CustomerRef", element="CustomerRef")
    customer = realm.customers.rows.get(ref["value"])
    if customer is None:
        raise invalid_reference(CUSTOMER, ref["value"])
    if not customer["Active"]:
        raise object_not_found(CUSTOMER, ref["value"])
    return customer


def _lines(realm: Realm, given: list[JsonObject]) -> tuple[list[JsonObject], float]:
    lines: list[JsonObject] = []
    total = 0.0
    # QuickBooks computes the subtotal line itself; one sent back (a full update) is dropped.
    given = [line for line in given if line.get("DetailType") != "SubTotalLineDetail"]
    for number, line in enumerate(given, start=1):
        detail_type = line.get("DetailType")
        if detail_type is None:
            raise required_missing(f"Line[{number - 1}].DetailType", element="DetailType")
        shaped: JsonObject = {"Id": str(number), "LineNum": number}
        if "Description" in line:
            shaped["Description"] = line["Description"]
        if detail_type == SALES_ITEM:
            detail = dict(line.get(SALES_ITEM) or {})
            item_id = (detail.get("ItemRef") or {}).get("value", "1")
            item = realm.items.rows.get(item_id)
            if item is None:
                raise invalid_reference(ITEM, item_id)
            detail["ItemRef"] = {"value": item_id, "name": item["Name"]}
            amount = line.get("Amount")
            if amount is None:
                if "Qty" not in detail or "UnitPrice" not in detail:
                    raise required_missing(f"Line[{number - 1}].Amount", element="Amount")
                amount = detail["Qty"] * detail["UnitPrice"]
            detail.setdefault("TaxCodeRef", {"value": "NON"})
            shaped.update({"Amount": amount, "DetailType": detail_type, SALES_ITEM: detail})
            total += float(amount)
        else:
            shaped.update({key: value for key, value in line.items() if key not in shaped})
            shaped["DetailType"] = detail_type
        lines.append(shaped)
    if not lines:
        raise required_missing("Line", element="Line")
    lines.append(
        {"Amount": round(total, 2), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
    )
    return lines, round(total, 2)


def _assemble(
    realm: Realm, invoice_id: str, fields: JsonObject, previous: JsonObject | None, at: float
) -> JsonObject:
    customer = _customer(realm, fields)
    lines, total = _lines(realm, fields.pop("Line", None) or [])
    txn_date = fields.pop("TxnDate", None) or clock.company_date(at)
    paid = (previous or {}).get("TotalAmt", 0) - (previous or {}).get("Balance", 0)
    row: JsonObject = {
        "AllowIPNPayment": fields.pop("AllowIPNPayment", False),
        "AllowOnlinePayment": fields.pop("AllowOnlinePayment", False),
        "AllowOnlineCreditCardPayment": fields.pop("AllowOnlineCreditCardPayment", False),
        "AllowOnlineACHPayment": fields.pop("AllowOnlineACHPayment", False),
        "domain": "QBO",
        "sparse": False,
        "Id": invoice_id,
        **versions.next_version(previous, at),
        "CustomField": fields.pop("CustomField", []),
        "DocNumber": fields.pop("DocNumber", None)
        or (previous or {}).get("DocNumber")
        or realm.allocate_doc_number(),
        "TxnDate": txn_date,
        "CurrencyRef": fields.pop("CurrencyRef", None)
        or {"value": "USD", "name": "United States Dollar"},
        "LinkedTxn": fields.pop("LinkedTxn", []),
        "Line": lines,
        "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
        "DueDate": fields.pop("DueDate", None)
        or clock.company_date(clock.parse_time(txn_date), PAYMENT_TERM_DAYS),
        "TotalAmt": total,
        "PrintStatus": fields.pop("PrintStatus", "NotSet"),
        "EmailStatus": fields.pop("EmailStatus", "NotSet"),
        "Balance": round(max(total - paid, 0.0), 2),
    }
    fields.pop("CustomerRef", None)
    if "BillAddr" not in fields and "BillAddr" in customer:
        row["BillAddr"] = dict(customer["BillAddr"])
    for key, value in fields.items():
        row.setdefault(key, value)
    return row


def _store(realm: Realm, row: JsonObject, previous: JsonObject | None) -> None:
    """Keep the customers' balances in step with their open invoices."""
    if previous is not None:
        _add_balance(realm, previous["CustomerRef"]["value"], -previous["Balance"])
    realm.invoices.rows[row["Id"]] = row
    _add_balance(realm, row["CustomerRef"]["value"], row["Balance"])


def _add_balance(realm: Realm, customer_id: str, amount: float) -> None:
    customer = realm.customers.rows.get(customer_id)
    if customer is None:
        return
    customer["Balance"] = round(customer.get("Balance", 0) + amount, 2)
    customer["BalanceWithJobs"] = customer["Balance"]


def receive_payment(realm: Realm, invoice_id: str, amount: float, at: float) -> JsonObject:
    """A payment a QuickBooks user records against an invoice: its balance (and its
    customer's) goes down by the amount, never below zero; a new version of the invoice."""
    previous = read(realm, invoice_id)
    if amount <= 0:
        raise invalid_property("Amount (a payment must be positive)")
    row = copy.deepcopy(previous)
    row["Balance"] = round(max(previous["Balance"] - amount, 0.0), 2)
    row.update(versions.next_version(previous, at))
    _store(realm, row, previous=previous)
    realm.changed(INVOICE, invoice_id, "Update", at)
    return row


_WRITES = versions.Writes(
    INVOICE_BODY, INVOICE_WRITABLE, lambda realm: realm.invoices, _assemble, _store
)
read, create, update = _WRITES.read, _WRITES.create, _WRITES.update
