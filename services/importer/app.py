"""The importer: streams a firm's QuickBooks customers into `qbo.customers`."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRecord

from qbsync.kafka.consumer import ConsumerLoop
from qbsync.kafka.topics import SYNC_REQUESTS
from qbsync.process import run_until_signalled
from qbsync.runtime import Runtime, settings_or_exit
from schemas import SyncRequest

SERVICE = "importer"
log = logging.getLogger("qbsync.importer")


async def serve(runtime: Runtime, stopping: asyncio.Event) -> None:
    async def on_sync_request(record: ConsumerRecord[bytes, bytes]) -> None:
        request = SyncRequest.model_validate_json(record.value or b"")
        log.info("sync requested", extra={"firm_id": request.firm_id, "kind": request.kind})

    settings = runtime.settings
    loop = ConsumerLoop(
        settings.KAFKA_BOOTSTRAP_SERVERS,
        settings.QBSYNC_TOPIC_PREFIX,
        f"qbsync-{SERVICE}",
        {SYNC_REQUESTS: on_sync_request},
        runtime.dead_letters,
    )
    await loop.start(settings.QBSYNC_CONNECT_ATTEMPTS)
    consuming = asyncio.create_task(loop.run())
    await stopping.wait()
    loop.stop_soon()
    await consuming


def main() -> None:
    settings = settings_or_exit(SERVICE)
    runtime = Runtime(SERVICE, settings)
    run_until_signalled(runtime, lambda stopping: serve(runtime, stopping))
