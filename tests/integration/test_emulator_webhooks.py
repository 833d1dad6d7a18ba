"""Signed webhook notifications from the emulator after customer changes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from qbsync.emulator import EmulatorConfig, RunningEmulator, running_emulator
from tests.support.polling import eventually
from tests.support.qbo import qbo_client

VERIFIER = "verifier-token-for-tests"


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[bytes, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), request.headers.get("intuit-signature", "")))
        return web.Response(status=self.status)

    def events(self) -> list[dict[str, Any]]:
        """Every change received, in the legacy format's terms whichever format came."""
        found: list[dict[str, Any]] = []
        for body, _ in self.received:
            document = json.loads(body)
            if isinstance(document, list):
                found.extend(legacy_terms(event) for event in document)
                continue
            for notification in document["eventNotifications"]:
                for entity in notification["dataChangeEvent"]["entities"]:
                    found.append({"realmId": notification["realmId"], **entity})
        return found


PRESENT_TENSE = {"created": "Create", "updated": "Update", "merged": "Merge"}


def legacy_terms(event: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent, checked field by field, as the legacy format would say it."""
    assert event["specversion"] == "1.0"
    assert event["datacontenttype"] == "application/json"
    assert event["source"] and event["id"]
    qbo, entity, operation, version = event["type"].split(".")
    assert (qbo, entity, version) == ("qbo", "customer", "v1")
    legacy = {
        "realmId": event["intuitaccountid"],
        "name": "Customer",
        "id": event["intuitentityid"],
        "operation": PRESENT_TENSE[operation],
        "lastUpdated": event["time"],
    }
    if "deletedid" in event["data"]:
        legacy["deletedId"] = event["data"]["deletedid"]
    return legacy


@asynccontextmanager
async def receiver(status: int = 200) -> AsyncIterator[Receiver]:
    target = Receiver(status)
    app = web.Application()
    app.router.add_post("/hooks", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield target
    finally:
        await runner.cleanup()


def expected_signature(body: bytes) -> str:
    return base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("format", ["cloudevents", "legacy"])
async def test_customer_changes_are_notified_with_a_valid_signature(format: str) -> None:
    async with receiver() as target:
        config = EmulatorConfig(
            webhook_url=target.url,
            webhook_verifier_token=VERIFIER,
            webhook_batch_ms=50,
            webhook_format=format,
        )
        async with running_emulator(config) as emulator, qbo_client(emulator) as qbo:
            created = await qbo.create_customer({"DisplayName": "Hooked"})
            await qbo.post(
                "customer",
                {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "changed"},
            )
            await emulator.admin.edit_customer_as_user(emulator.realm_id, "1", {"Notes": "by user"})
            await emulator.admin.merge_customers(emulator.realm_id, "2", "3")

            async def all_four() -> list[dict[str, Any]]:
                events = target.events()
                return events if len(events) >= 4 else []

            events = await eventually(all_four, timeout=10, what="four webhook events")
    for body, signature in target.received:
        assert hmac.compare_digest(signature, expected_signature(body))
    assert [(e["realmId"], e["name"], e["id"], e["operation"]) for e in events] == [
        (emulator.realm_id, "Customer", created["Id"], "Create"),
        (emulator.realm_id, "Customer", created["Id"], "Update"),
        (emulator.realm_id, "Customer", "1", "Update"),
        (emulator.realm_id, "Customer", "3", "Merge"),
    ]
    assert events[3]["deletedId"] == "2"
    assert all(event["lastUpdated"].endswith("Z") for event in events)
    assert all(
        isinstance(json.loads(body), list) == (format == "cloudevents")
        for body, _ in target.received
    )


async def test_a_cloudevents_delivery_spans_the_realms_changed_together(
    emulator: RunningEmulator,
) -> None:
    other = str((await emulator.admin.create_realm())["realm_id"])
    async with receiver() as target:
        await emulator.admin.set_webhook(target.url, VERIFIER, batch_ms=300)
        await emulator.admin.edit_customer_as_user(emulator.realm_id, "1", {"Notes": "a"})
        await emulator.admin.edit_customer_as_user(other, "2", {"Notes": "b"})

        async def both() -> list[dict[str, Any]]:
            events = target.events()
            return events if len(events) >= 2 else []

        events = await eventually(both, timeout=10, what="both realms' events")
    assert len(target.received) == 1
    assert [(e["realmId"], e["id"]) for e in events] == [(emulator.realm_id, "1"), (other, "2")]


async def test_failed_deliveries_are_retried(emulator: RunningEmulator) -> None:
    async with receiver(status=500) as target:
        await emulator.admin.set_webhook(target.url, VERIFIER, batch_ms=10)
        await emulator.admin.create_customer_as_user(emulator.realm_id, {"DisplayName": "Retry"})

        async def three_attempts() -> bool:
            return len(target.received) >= 3

        await eventually(three_attempts, timeout=15, what="three delivery attempts")
        deliveries = await emulator.admin.webhook_deliveries()
    assert deliveries[0]["status"] == 500 and deliveries[0]["attempts"] == 3
    assert len({body for body, _ in target.received}) == 1  # the same notification each time
