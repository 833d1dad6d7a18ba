"""Intuit webhook notifications: the signature check and both payload formats (pure).

- `intuit-signature` is base64(HMAC-SHA256(verifier token, raw body)); compared in constant
  time, over the raw bytes as received (re-serialised JSON would not match).
- Legacy body: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities":
  [{"name", "id", "operation", "lastUpdated", "deletedId"?}]}}]}`.
- CloudEvents body: a JSON array of `{"specversion", "id", "type": "qbo.customer.updated.v1",
  "time", "intuitentityid", "intuitaccountid", "data"?: {"deletedid"?}}`.
Both become a list of EntityChange. Notifications carry ids, never field values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qbsync.errors import QbsyncError

SIGNATURE_HEADER = "intuit-signature"

# CloudEvents spell entities and operations in lower case; the legacy format (and the API)
# in CamelCase. The entities QuickBooks sends webhooks for, so names map back exactly.
_ENTITY_NAMES = {
    name.lower(): name
    for name in [
        "Account",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CreditMemo",
        "Currency",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    ]
}
_OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}


class WebhookPayloadError(QbsyncError):
    """The body is neither a legacy notification nor a CloudEvents array we can read."""


@dataclass(frozen=True)
class EntityChange:
    realm_id: str
    entity: str  # "Customer", as the API names it
    entity_id: str
    operation: str  # Create | Update | Delete | Merge | Void | Emailed
    occurred_at: datetime | None = None
    deleted_id: str | None = None  # Merge: the id merged away into entity_id
    event_id: str | None = None  # CloudEvents carry one; the legacy format does not


def sign(verifier_token: str, body: bytes) -> str:
    """The `intuit-signature` value QuickBooks sends with `body`."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(verifier_token: str, body: bytes, signature: str | None) -> bool:
    """True only when `signature` is the HMAC of exactly these bytes (constant-time)."""
    if not signature:
        return False
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)


def parse_notifications(body: bytes | str) -> list[EntityChange]:
    """Every entity change in a webhook body, whichever of the two formats it is."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookPayloadError(f"webhook body is not JSON: {exc}") from None
    if isinstance(document, list):
        return parse_cloudevents(document)
    if isinstance(document, Mapping) and "eventNotifications" in document:
        return parse_legacy(document)
    raise WebhookPayloadError("webhook body is neither eventNotifications nor a CloudEvents array")


def parse_legacy(document: Mapping[str, Any]) -> list[EntityChange]:
    changes: list[EntityChange] = []
    for notification in _list(document.get("eventNotifications"), "eventNotifications"):
        notification = _mapping(notification, "an eventNotification")
        realm_id = _text(notification.get("realmId"), "realmId")
        event = _mapping(notification.get("dataChangeEvent") or {}, "dataChangeEvent")
        for entity in _list(event.get("entities", []), "dataChangeEvent.entities"):
            entity = _mapping(entity, "an entity")
            changes.append(
                EntityChange(
                    realm_id=realm_id,
                    entity=_entity_name(_text(entity.get("name"), "entity name")),
                    entity_id=_text(entity.get("id"), "entity id"),
                    operation=_text(entity.get("operation"), "operation"),
                    occurred_at=_time(entity.get("lastUpdated")),
                    deleted_id=_optional_text(entity.get("deletedId")),
                )
            )
    return changes


def parse_cloudevents(document: list[Any]) -> list[EntityChange]:
    changes: list[EntityChange] = []
    for event in document:
        event = _mapping(event, "a CloudEvent")
        kind = _text(event.get("type"), "type").split(".")
        # qbo.<entity>.<past-tense operation>.v<N>
        if len(kind) < 3 or kind[0] != "qbo":
            raise WebhookPayloadError(f"unknown CloudEvent type {event.get('type')!r}")
        data = event.get("data")
        data = data if isinstance(data, Mapping) else {}
        changes.append(
            EntityChange(
                realm_id=_text(event.get("intuitaccountid"), "intuitaccountid"),
                entity=_entity_name(kind[1]),
                entity_id=_text(event.get("intuitentityid"), "intuitentityid"),
                operation=_OPERATIONS.get(kind[2].lower(), kind[2].capitalize()),
                occurred_at=_time(event.get("time")),
                deleted_id=_optional_text(data.get("deletedid") or data.get("deletedId")),
                event_id=_optional_text(event.get("id")),
            )
        )
    return changes


def _entity_name(raw: str) -> str:
    return _ENTITY_NAMES.get(raw.lower(), raw[:1].upper() + raw[1:])


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise WebhookPayloadError(f"{what} is not a list")
    return value


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WebhookPayloadError(f"{what} is not an object")
    return value


def _text(value: object, what: str) -> str:
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
        return str(value)
    raise WebhookPayloadError(f"{what} is missing or not a string")


def _optional_text(value: object) -> str | None:
    return str(value) if isinstance(value, int | str) and str(value).strip() else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
