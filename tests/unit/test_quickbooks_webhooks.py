"""intuit-signature verification and the two webhook payload formats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from qbsync.emulator import webhooks as emulator_webhooks
from qbsync.quickbooks.webhooks import (
    EntityChange,
    WebhookPayloadError,
    parse_notifications,
    sign,
    verify_signature,
)

VERIFIER = "a1b2c3-verifier"

LEGACY = {
    "eventNotifications": [
        {
            "realmId": "9130",
            "dataChangeEvent": {
                "entities": [
                    {
                        "name": "Customer",
                        "id": "58",
                        "operation": "Update",
                        "lastUpdated": "2026-11-25T16:00:00.000Z",
                    },
                    {
                        "name": "Customer",
                        "id": "12",
                        "operation": "Merge",
                        "lastUpdated": "2026-11-25T16:00:01Z",
                        "deletedId": "27",
                    },
                ]
            },
        },
        {"realmId": "4620", "dataChangeEvent": {"entities": [
            {"name": "Invoice", "id": "130", "operation": "Create", "lastUpdated": "bad"}
        ]}},
    ]
}  # fmt: skip

CLOUD_EVENTS = [
    {
        "specversion": "1.0",
        "id": "88cd52aa-Customer-58",
        "source": "intuit.abc",
        "type": "qbo.customer.updated.v1",
        "datacontenttype": "application/json",
        "time": "2026-11-25T16:00:00Z",
        "intuitentityid": "58",
        "intuitaccountid": "9130",
    },
    {
        "specversion": "1.0",
        "id": "99-Customer-12",
        "source": "intuit.abc",
        "type": "qbo.customer.merged.v1",
        "time": "2026-11-25T16:00:01.5Z",
        "intuitentityid": "12",
        "intuitaccountid": "9130",
        "data": {"deletedid": "27"},
    },
    {
        "specversion": "1.0",
        "id": "77-SalesReceipt-150",
        "type": "qbo.salesreceipt.deleted.v1",
        "intuitentityid": "150",
        "intuitaccountid": "9130",
    },
]


def test_a_signature_over_the_raw_body_verifies() -> None:
    body = json.dumps(LEGACY).encode()
    expected = base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest())
    assert sign(VERIFIER, body) == expected.decode()
    assert verify_signature(VERIFIER, body, expected.decode())


@pytest.mark.parametrize(
    "signature",
    [None, "", "not base64!", base64.b64encode(b"x" * 32).decode(), sign("other-key", b"{}")],
)
def test_wrong_or_missing_signatures_fail(signature: str | None) -> None:
    assert not verify_signature(VERIFIER, b"{}", signature)


def test_a_changed_body_fails_even_if_it_is_the_same_json() -> None:
    body = json.dumps(LEGACY).encode()
    signature = sign(VERIFIER, body)
    respaced = json.dumps(LEGACY, indent=2).encode()
    assert not verify_signature(VERIFIER, respaced, signature)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_signature(VERIFIER, b"{}", sign(VERIFIER, b"{}"))
    assert len(calls) == 1


def test_legacy_notifications() -> None:
    changes = parse_notifications(json.dumps(LEGACY).encode())
    assert changes == [
        EntityChange(
            realm_id="9130",
            entity="Customer",
            entity_id="58",
            operation="Update",
            occurred_at=datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
        ),
        EntityChange(
            realm_id="9130",
            entity="Customer",
            entity_id="12",
            operation="Merge",
            occurred_at=datetime(2026, 11, 25, 16, 0, 1, tzinfo=UTC),
            deleted_id="27",
        ),
        EntityChange(realm_id="4620", entity="Invoice", entity_id="130", operation="Create"),
    ]


def test_cloudevents() -> None:
    changes = parse_notifications(json.dumps(CLOUD_EVENTS))
    assert changes == [
        EntityChange(
            realm_id="9130",
            entity="Customer",
            entity_id="58",
            operation="Update",
            occurred_at=datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
            event_id="88cd52aa-Customer-58",
        ),
        EntityChange(
            realm_id="9130",
            entity="Customer",
            entity_id="12",
            operation="Merge",
            occurred_at=datetime(2026, 11, 25, 16, 0, 1, 500000, tzinfo=UTC),
            deleted_id="27",
            event_id="99-Customer-12",
        ),
        EntityChange(
            realm_id="9130",
            entity="SalesReceipt",
            entity_id="150",
            operation="Delete",
            event_id="77-SalesReceipt-150",
        ),
    ]


def test_empty_payloads_have_no_changes() -> None:
    assert parse_notifications(b"[]") == []
    assert parse_notifications(b'{"eventNotifications": []}') == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b'{"something": "else"}',
        b'"text"',
        b'{"eventNotifications": {}}',
        b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}',
        b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{}]}}]}',
        b'[{"type": "something.else", "intuitentityid": "1", "intuitaccountid": "2"}]',
        b'[{"type": "qbo.customer.updated.v1", "intuitaccountid": "2"}]',
        b"[1]",
    ],
)
def test_malformed_payloads_are_rejected(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_notifications(body)


def test_the_emulators_cloudevents_delivery_is_split_by_realm() -> None:
    """One delivery of several realms (as the emulator sends it) becomes each realm's
    changes; the merge keeps the id merged away."""
    events = [
        {"realmId": "111", "name": "Customer", "id": "5", "operation": "Update",
         "lastUpdated": "2026-11-25T16:00:00.000Z"},
        {"realmId": "222", "name": "Customer", "id": "9", "operation": "Merge",
         "deletedId": "4", "lastUpdated": "2026-11-25T16:00:01.000Z"},
        {"realmId": "111", "name": "Customer", "id": "6", "operation": "Create",
         "lastUpdated": "2026-11-25T16:00:02.000Z"},
    ]  # fmt: skip
    body = emulator_webhooks.notification_body(events, "cloudevents")
    document = json.loads(body)
    assert [event["type"] for event in document] == [
        "qbo.customer.updated.v1",
        "qbo.customer.merged.v1",
        "qbo.customer.created.v1",
    ]

    changes = parse_notifications(body)

    by_realm = {
        realm: [(c.entity_id, c.operation, c.deleted_id) for c in changes if c.realm_id == realm]
        for realm in ("111", "222")
    }
    assert by_realm == {
        "111": [("5", "Update", None), ("6", "Create", None)],
        "222": [("9", "Merge", "4")],
    }
    assert all(c.event_id for c in changes)
    assert parse_notifications(emulator_webhooks.notification_body(events, "legacy")) == [
        replace(change, event_id=None) for change in changes if change.realm_id == "111"
    ] + [replace(change, event_id=None) for change in changes if change.realm_id == "222"]
