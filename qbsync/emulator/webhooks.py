"""Intuit-style webhook notifications: after customer changes, POST a body signed with
`intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)). Changes are gathered for
a short while and sent together (one delivery may span several realms), as Intuit does;
failed deliveries are retried a few times.

The body is a CloudEvents JSON array, as QuickBooks sends since 15 May 2026 (one event per
change: `type` `qbo.customer.updated.v1`, `intuitaccountid` the realm, `intuitentityid` the
customer, `data.deletedid` for a merge); `format="legacy"` sends the older
`eventNotifications` object instead."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from qbsync.emulator import clock
from qbsync.emulator.entities import CUSTOMER

log = logging.getLogger("qbsync.emulator.webhooks")

NOTIFIED_ENTITIES = frozenset({CUSTOMER})
KEPT_DELIVERIES = 1000
FORMATS = ("cloudevents", "legacy")
# CloudEvents name operations in the past tense, in lower case.
_PAST_TENSE = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Merge": "merged",
    "Void": "voided",
    "Emailed": "emailed",
}
# Intuit's `source` is an opaque id of the app's subscription; this one is the emulator's.
CLOUDEVENTS_SOURCE = "intuit.qbsync-emulator"


@dataclass
class WebhookSettings:
    url: str | None = None
    verifier_token: str | None = None
    batch_ms: float = 200.0  # changes within this long go out in one notification
    attempts: int = 3
    retry_ms: float = 500.0
    format: str = "cloudevents"  # or "legacy"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"webhook format must be one of {', '.join(FORMATS)}")

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.verifier_token)

    def public(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["verifier_token"] = "set" if self.verifier_token else None
        return shown


@dataclass
class Delivery:
    url: str
    body: str
    signature: str
    status: int | None = None
    error: str | None = None
    attempts: int = 0
    sent_at: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sign(verifier_token: str, body: bytes) -> str:
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def notification_body(events: list[dict[str, Any]], format: str = "legacy") -> bytes:
    """The body for events of one or more realms: a CloudEvents array (one event per
    change, in order) or the legacy object (realms in first-seen order)."""
    if format == "cloudevents":
        return json.dumps([cloud_event(event) for event in events]).encode()
    by_realm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        entity = {key: value for key, value in event.items() if key != "realmId"}
        by_realm[event["realmId"]].append(entity)
    notifications = [
        {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
        for realm_id, entities in by_realm.items()
    ]
    return json.dumps({"eventNotifications": notifications}).encode()


def cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """One change as QuickBooks' CloudEvent."""
    entity, operation = event["name"].lower(), _PAST_TENSE[event["operation"]]
    data = {"deletedid": event["deletedId"]} if "deletedId" in event else {}
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": CLOUDEVENTS_SOURCE,
        "type": f"qbo.{entity}.{operation}.v1",
        "datacontenttype": "application/json",
        "time": event["lastUpdated"],
        "intuitentityid": event["id"],
        "intuitaccountid": event["realmId"],
        "data": data,
    }


def _last_updated(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookNotifier:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.deliveries: list[Delivery] = []
        self._pending: list[dict[str, Any]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_progress: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def notify(
        self,
        realm_id: str,
        entity: str,
        entity_id: str,
        operation: str,
        at: float,
        deleted_id: str | None = None,
    ) -> None:
        if not self.settings.enabled or entity not in NOTIFIED_ENTITIES:
            return
        event: dict[str, Any] = {
            "realmId": realm_id,
            "name": entity,
            "id": entity_id,
            "operation": operation,
            "lastUpdated": _last_updated(at),
        }
        if deleted_id is not None:
            event["deletedId"] = deleted_id
        self._pending.append(event)
        self._wakeup.set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=10.0)
        self._task = asyncio.create_task(self._run(), name="emulator-webhooks")

    async def stop(self) -> None:
        tasks = [task for task in (self._task, *self._in_progress) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self.settings.batch_ms / 1000.0)
            self._wakeup.clear()
            events, self._pending = self._pending, []
            if events and self.settings.enabled:
                task = asyncio.create_task(self._deliver(events))
                self._in_progress.add(task)
                task.add_done_callback(self._in_progress.discard)

    async def _deliver(self, events: list[dict[str, Any]]) -> None:
        assert self.settings.url and self.settings.verifier_token and self._client
        body = notification_body(events, self.settings.format)
        delivery = Delivery(
            url=self.settings.url,
            body=body.decode(),
            signature=sign(self.settings.verifier_token, body),
        )
        self.deliveries.append(delivery)
        del self.deliveries[:-KEPT_DELIVERIES]
        for attempt in range(1, self.settings.attempts + 1):
            delivery.attempts = attempt
            delivery.sent_at.append(clock.now())
            try:
                response = await self._client.post(
                    delivery.url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "intuit-signature": delivery.signature,
                    },
                )
                delivery.status, delivery.error = response.status_code, None
                if response.is_success:
                    return
            except httpx.HTTPError as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self.settings.retry_ms / 1000.0 * attempt)
        log.warning("webhook delivery failed", extra={"url": delivery.url, "error": delivery.error})
