"""The importer: streams QuickBooks customers into `qbo.customers`.

- `sync.requests` (Sync Now, replay): opens a run, or joins the firm's open one;
- the import worker claims runs' import steps and pages through every customer;
- `POST /webhooks/quickbooks`: Intuit's notifications, checked and written to
  `qbo.changes` before answering; a consumer of `qbo.changes` reads each changed customer;
- CDC polling per connected realm catches what webhooks missed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiohttp import web
from aiokafka import ConsumerRecord

from qbsync import metrics
from qbsync.bootstrap import consume, run
from qbsync.errors import ConfigurationError
from qbsync.kafka.consumer import ConsumerLoop
from qbsync.kafka.topics import QBO_CHANGES, SYNC_REQUESTS
from qbsync.quickbooks.errors import QuickBooksError
from qbsync.quickbooks.webhooks import WebhookPayloadError, parse_notifications, verify_signature
from qbsync.retry import Backoff, is_transient, pause_after_failure
from qbsync.runtime import Route, Runtime
from qbsync.sync.freshness import apply_change_notice, poll_realm
from qbsync.sync.steps import import_run
from qbsync.waiting import wait_for_event
from schemas import QboChangeNotice, SyncRequest

SERVICE = "importer"
WEBHOOK_PATH = "/webhooks/quickbooks"
log = logging.getLogger("qbsync.importer")


class Importer:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.wake = asyncio.Event()

    # -- Sync Now -----------------------------------------------------------------------
    async def on_sync_request(self, record: ConsumerRecord[bytes, bytes]) -> None:
        request = SyncRequest.model_validate_json(record.value or b"")
        run, created = await self.runtime.uow.direct.runs.open_or_join(
            request.firm_id,
            request.request_id,
            request.kind,
            request.requested_at,
        )
        log.info(
            "sync requested",
            extra={"firm_id": request.firm_id, "run_id": run.run_id, "joined": not created},
        )
        self.wake.set()

    async def import_runs(self, stopping: asyncio.Event) -> None:
        backoff = Backoff()
        while not stopping.is_set():
            try:
                run = await self.runtime.uow.direct.runs.claim_next("import")
                if run is not None:
                    await import_run(
                        self.runtime.uow, self.runtime.producer, self.runtime.quickbooks, run
                    )
            except Exception as exc:
                # PostgreSQL down, say: this loop must outlive it. A step claimed here and
                # left unfinished is taken over when its lease runs out.
                await pause_after_failure("importing runs", exc, backoff, stopping)
                continue
            backoff.reset()
            if run is None:
                self.wake.clear()
                await wait_for_event(self.wake, 1.0)

    # -- Between runs -------------------------------------------------------------------
    async def on_webhook(self, request: web.Request) -> web.Response:
        verifier = self.runtime.settings.QBO_WEBHOOK_VERIFIER_TOKEN
        if not verifier:
            return web.json_response({"error": "webhooks are not configured"}, status=503)
        body = await request.read()
        if not verify_signature(verifier, body, request.headers.get("intuit-signature")):
            return web.json_response({"error": "invalid intuit-signature"}, status=401)
        try:
            changes = parse_notifications(body)
        except WebhookPayloadError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        received = datetime.now(UTC)
        for change in changes:
            notice = QboChangeNotice(
                realm_id=change.realm_id,
                entity=change.entity,
                entity_id=change.entity_id,
                operation=change.operation,
                deleted_id=change.deleted_id,
                last_updated=change.occurred_at,
                received_at=received,
            )
            # Written (and acknowledged by Kafka) before we answer 200: nothing is lost.
            await self.runtime.producer.send(QBO_CHANGES, change.realm_id, notice)
        return web.json_response({"accepted": len(changes)})

    async def on_change_notice(self, record: ConsumerRecord[bytes, bytes]) -> None:
        notice = QboChangeNotice.model_validate_json(record.value or b"")
        try:
            await apply_change_notice(
                self.runtime.uow, self.runtime.producer, self.runtime.quickbooks, notice
            )
        except (QuickBooksError, ConfigurationError) as exc:
            # The next CDC round picks the change up; a notification is only a hint.
            log.warning(
                "change notice not applied", extra={"realm_id": notice.realm_id, "reason": str(exc)}
            )

    async def poll_changes(self, stopping: asyncio.Event) -> None:
        interval = self.runtime.settings.QBSYNC_CDC_INTERVAL_SECONDS
        backoff = Backoff()
        while not stopping.is_set():
            try:
                await self.poll_connected_realms()
            except Exception as exc:  # this loop must outlive PostgreSQL going away
                await pause_after_failure("polling changes", exc, backoff, stopping)
                continue
            backoff.reset()
            await wait_for_event(stopping, interval)

    async def poll_connected_realms(self) -> None:
        """One CDC round of every connected realm. A realm's failure stays that realm's
        (logged and counted; a dead token marks its connection), except a dependency
        being down (`is_transient`), which ends the round for the loop to wait out."""
        uow = self.runtime.uow
        for firm_id, realm_id in await uow.direct.connections.connected_realms():
            try:
                await poll_realm(
                    uow, self.runtime.producer, self.runtime.quickbooks, firm_id, realm_id
                )
            except Exception as exc:
                if is_transient(exc):
                    raise
                metrics.CDC_POLLS_FAILED.labels(type(exc).__name__).inc()
                log.warning("CDC poll failed", extra={"realm_id": realm_id, "reason": str(exc)})

    # -- Serving ------------------------------------------------------------------------
    @property
    def routes(self) -> list[Route]:
        return [("POST", WEBHOOK_PATH, self.on_webhook)]

    async def serve(self, stopping: asyncio.Event) -> None:
        settings = self.runtime.settings
        consumer = ConsumerLoop(
            settings.KAFKA_BOOTSTRAP_SERVERS,
            settings.QBSYNC_TOPIC_PREFIX,
            f"qbsync-{SERVICE}",
            {SYNC_REQUESTS: self.on_sync_request, QBO_CHANGES: self.on_change_notice},
            self.runtime.dead_letters,
            connect_attempts=settings.QBSYNC_CONNECT_ATTEMPTS,
        )
        await consume(stopping, [consumer], [self.import_runs, self.poll_changes])


def main() -> None:
    run(SERVICE, Importer)
