"""The QuickBooks Online v3 operations under /v3/company/{realmId}/, as pure functions of
a realm: what a request is (`classify`) and what it does (`execute`). HTTP concerns
(authentication, limits, latency, faults, idempotent replays) live in gate.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qbsync.emulator import clock, customers, invoices, items, query
from qbsync.emulator.entities import ACCOUNT, CUSTOMER, INVOICE, ITEM
from qbsync.emulator.errors import (
    QboFault,
    invalid_property,
    object_not_found,
    query_parse_error,
    required_missing,
    stale_object,
    unsupported,
)
from qbsync.emulator.realm import JsonObject, Realm

MAX_BATCH_ITEMS = 30
MAX_CDC_OBJECTS = 1000
CDC_LOOKBACK_SECONDS = 30 * 86400
_ENTITY_NAMES = {name.lower(): name for name in (CUSTOMER, ITEM, INVOICE, ACCOUNT)}
_WRITABLE = (CUSTOMER, INVOICE, ITEM)
_NOT_PARSED = object()


@dataclass(frozen=True)
class Operation:
    """One API request, understood before it is admitted (its cost and whether it writes
    decide how the limiter, the replay cache and fault injection treat it)."""

    name: str  # e.g. "customer.write", "customer.read", "query", "cdc", "batch"
    write: bool
    cost: int
    method: str
    segments: tuple[str, ...]
    params: Mapping[str, str]
    body: Any  # parsed JSON, the query text, or _NOT_PARSED when the JSON was malformed
    body_error: str | None = None


def classify(
    method: str, segments: tuple[str, ...], params: Mapping[str, str], raw_body: bytes
) -> Operation:
    head = segments[0].lower() if segments else ""
    body: Any = None
    error: str | None = None
    if head == "query":
        body = params.get("query") if method == "GET" else raw_body.decode(errors="replace")
        return Operation("query", False, 1, method, segments, params, body)
    if method == "POST":
        try:
            body = json.loads(raw_body) if raw_body.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            body, error = _NOT_PARSED, str(exc)
    if head == "batch" and method == "POST":
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        size = len(items) if isinstance(items, list) else 1
        writes = not isinstance(items, list) or any(
            isinstance(item, dict) and "Query" not in item for item in items
        )
        return Operation("batch", writes, max(size, 1), method, segments, params, body, error)
    if head in _ENTITY_NAMES:
        if method == "POST" and len(segments) == 1 and head != ACCOUNT.lower():
            return Operation(f"{head}.write", True, 1, method, segments, params, body, error)
        if method == "GET" and len(segments) == 2:
            return Operation(f"{head}.read", False, 1, method, segments, params, body)
    if head == "cdc" and method == "GET":
        return Operation("cdc", False, 1, method, segments, params, body)
    return Operation("unsupported", method == "POST", 1, method, segments, params, body, error)


def execute(realm: Realm, operation: Operation, now: float) -> JsonObject:
    """Run an operation; the answer's body without `time`. Raises QboFault."""
    if operation.body is _NOT_PARSED:
        raise invalid_property(f"request body (malformed JSON: {operation.body_error})")
    name = operation.name
    if name == "query":
        return {"QueryResponse": run_query(realm, operation.body)}
    if name == "cdc":
        return {
            "CDCResponse": [{"QueryResponse": change_data_capture(realm, operation.params, now)}]
        }
    if name == "batch":
        return {"BatchItemResponse": batch(realm, operation.body, now)}
    if name.endswith(".read"):
        entity = _ENTITY_NAMES[name.split(".")[0]]
        return {entity: dict(read(realm, entity, operation.segments[1]))}
    if name == "customer.write":
        if operation.params.get("operation", "").lower() == "delete":
            raise unsupported("Customer delete (make the customer inactive instead)")
        return {CUSTOMER: dict(write(realm, CUSTOMER, operation.body, now))}
    if name == "invoice.write":
        if operation.params.get("operation", "").lower() == "delete":
            return {INVOICE: delete_invoice(realm, operation.body, now)}
        return {INVOICE: dict(write(realm, INVOICE, operation.body, now))}
    if name == "item.write":
        return {ITEM: dict(write(realm, ITEM, operation.body, now))}
    raise unsupported(f"{operation.method} /{'/'.join(operation.segments)}")


def read(realm: Realm, entity: str, entity_id: str) -> JsonObject:
    if entity == CUSTOMER:
        return customers.read(realm, entity_id)
    if entity == INVOICE:
        return invoices.read(realm, entity_id)
    if entity == ITEM:
        return items.read(realm, entity_id)
    row = realm.table(entity).rows.get(entity_id)
    if row is None:
        raise object_not_found(entity, entity_id)
    return row


def write(realm: Realm, entity: str, body: Any, now: float) -> JsonObject:
    """Create, or update when the body carries an Id (sparse when it says so)."""
    if not isinstance(body, dict):
        raise invalid_property(f"request body (expected a {entity} object)")
    updating = body.get("Id") not in (None, "")
    if entity == CUSTOMER:
        return (
            customers.update(realm, body, now) if updating else customers.create(realm, body, now)
        )
    if entity == INVOICE:
        return invoices.update(realm, body, now) if updating else invoices.create(realm, body, now)
    if entity == ITEM:
        return items.update(realm, body, now) if updating else items.create(realm, body, now)
    raise unsupported(f"{entity} create or update")


def delete_invoice(realm: Realm, body: Any, now: float) -> JsonObject:
    if not isinstance(body, dict) or body.get("Id") in (None, ""):
        raise required_missing("Id")
    if body.get("SyncToken") in (None, ""):
        raise required_missing("SyncToken")
    invoice_id = str(body["Id"])
    row = invoices.read(realm, invoice_id)
    if str(body["SyncToken"]) != row["SyncToken"]:
        raise stale_object(INVOICE, invoice_id)
    del realm.invoices.rows[invoice_id]
    customer = realm.customers.rows.get(row["CustomerRef"]["value"])
    if customer is not None:
        customer["Balance"] = round(customer.get("Balance", 0) - row["Balance"], 2)
        customer["BalanceWithJobs"] = customer["Balance"]
    stub = {"domain": "QBO", "status": "Deleted", "Id": invoice_id}
    realm.invoices.deleted[invoice_id] = {
        **stub,
        "MetaData": {"LastUpdatedTime": clock.metadata_time(now)},
    }
    realm.changed(INVOICE, invoice_id, "Delete", now)
    return stub


def run_query(realm: Realm, text: Any) -> JsonObject:
    if not isinstance(text, str) or not text.strip():
        raise query_parse_error('Encountered "<EOF>" at line 1, column 1. Was expecting: SELECT')
    parsed = query.parse(text)
    rows = realm.table(parsed.entity).rows.values()
    return query.response(query.evaluate(parsed, rows))


def change_data_capture(realm: Realm, params: Mapping[str, str], now: float) -> list[JsonObject]:
    entities_param = params.get("entities")
    if not entities_param:
        raise required_missing("entities")
    changed_since = params.get("changedSince")
    if not changed_since:
        raise required_missing("changedSince")
    entities = []
    for given in entities_param.split(","):
        entity = _ENTITY_NAMES.get(given.strip().lower())
        if entity is None:
            raise invalid_property(f"entities ({given.strip()} is not supported by CDC)")
        entities.append(entity)
    try:
        # An offset's "+" sent unencoded arrives as a space; read it as the "+" it was.
        since = clock.parse_time(changed_since.strip().replace(" ", "+"))
    except ValueError:
        raise invalid_property(f"changedSince ({changed_since} is not a date-time)") from None
    if since < now - CDC_LOOKBACK_SECONDS:
        raise QboFault(
            "4001",
            "Invalid query",
            "QueryValidationError: changedSince cannot be more than 30 days in the past",
        )
    responses: list[JsonObject] = []
    room = MAX_CDC_OBJECTS
    for entity in entities:
        table = realm.table(entity)
        objects: list[JsonObject] = []
        for entity_id in table.changed_since(since)[:room]:
            row = table.rows.get(entity_id) or table.deleted.get(entity_id)
            if row is not None:
                objects.append(dict(row))
        room -= len(objects)
        responses.append(
            {
                entity: objects,
                "startPosition": 1,
                "maxResults": len(objects),
                "totalCount": len(objects),
            }
            if objects
            else {}
        )
    return responses


def batch(realm: Realm, body: Any, now: float) -> list[JsonObject]:
    if not isinstance(body, dict) or not isinstance(body.get("BatchItemRequest"), list):
        raise required_missing("BatchItemRequest")
    items = body["BatchItemRequest"]
    if not items:
        raise required_missing("BatchItemRequest")
    if len(items) > MAX_BATCH_ITEMS:
        raise QboFault(
            "4002",
            "Batch size limit exceeded",
            f"Batch request has {len(items)} items; at most {MAX_BATCH_ITEMS} are allowed.",
        )
    return [_batch_item(realm, item, now) for item in items]


def _batch_item(realm: Realm, item: Any, now: float) -> JsonObject:
    b_id = item.get("bId") if isinstance(item, dict) else None
    answer: JsonObject = {"bId": b_id}
    try:
        if not isinstance(item, dict) or b_id in (None, ""):
            raise required_missing("bId")
        if "Query" in item:
            answer["QueryResponse"] = run_query(realm, item["Query"])
            return answer
        entity = next((name for name in _WRITABLE if name in item), None)
        if entity is None:
            raise invalid_property("BatchItemRequest (no Customer, Invoice, Item or Query)")
        operation = str(item.get("operation", "")).lower()
        if operation == "create":
            body = item[entity]
            if isinstance(body, dict):
                body = {key: value for key, value in body.items() if key != "Id"}
            answer[entity] = dict(write(realm, entity, body, now))
        elif operation == "update":
            body = item[entity]
            if not isinstance(body, dict) or body.get("Id") in (None, ""):
                raise required_missing("Id")
            answer[entity] = dict(write(realm, entity, body, now))
        elif operation == "delete" and entity == INVOICE:
            answer[entity] = delete_invoice(realm, item[entity], now)
        else:
            raise unsupported(f"batch {operation or '(none)'} of {entity}")
    except QboFault as fault:
        for entity in _WRITABLE:
            answer.pop(entity, None)
        answer["Fault"] = fault.fault()
    return answer
