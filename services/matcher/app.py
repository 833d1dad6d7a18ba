"""The matcher: keeps each firm's accounts and customers, links them by name during a
Sync Now, and delinks pairs whose account or customer went away.

A faust service. Its two bulk input topics are read a batch at a time by the worker's
BatchConsumer (qbsync/kafka/batches.py: faust's per-message path alone costs more CPU per
record than the matcher can afford). A task moves Sync Now runs through their match and
push steps every half second; a task publishes the outbox (link events, fill-field commands).
"""

from __future__ import annotations

import asyncio
import logging

from qbsync.kafka.batches import BatchInput
from qbsync.kafka.topics import ACCOUNT_EVENTS, QBO_CUSTOMERS
from qbsync.retry import Backoff, pause_after_failure
from qbsync.runtime import Runtime, settings_or_exit
from qbsync.streaming import create_app, run_worker
from qbsync.sync import copies
from qbsync.sync.advance import RunAdvancer
from schemas import AccountEvent, CustomerRecord

SERVICE = "matcher"
log = logging.getLogger("qbsync.matcher")

settings = settings_or_exit(SERVICE)
runtime = Runtime(SERVICE, settings)
app = create_app(SERVICE, settings, with_agents=False)
TICK_SECONDS = 0.5


async def keep_accounts(events: list[AccountEvent]) -> None:
    await copies.keep_accounts(runtime.uow, events)


async def keep_customers(records: list[CustomerRecord]) -> None:
    await copies.keep_customers(runtime.uow, records)


BATCH_INPUTS = (
    BatchInput(ACCOUNT_EVENTS, AccountEvent, keep_accounts),
    BatchInput(QBO_CUSTOMERS, CustomerRecord, keep_customers),
)


@app.task
async def advance_runs() -> None:
    """Every TICK_SECONDS (cancelled when the app stops). A failed tick (PostgreSQL down,
    say) is logged and tried again after a pause: it must not crash the matcher."""
    advancer = RunAdvancer(
        runtime.uow, runtime.quickbooks, stall_seconds=settings.QBSYNC_RUN_STALL_SECONDS
    )
    backoff = Backoff()
    while True:
        try:
            await advancer.tick()
        except Exception as exc:
            await pause_after_failure("advancing sync runs", exc, backoff)
            continue
        backoff.reset()
        await asyncio.sleep(TICK_SECONDS)


@app.task
async def publish_outbox() -> None:
    await runtime.outbox.run()


def main() -> None:
    run_worker(app, runtime, batch_inputs=BATCH_INPUTS)
