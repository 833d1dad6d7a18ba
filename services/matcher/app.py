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
from collections import defaultdict

from qbsync.db.accounts import store_accounts
from qbsync.db.customers import store_customers
from qbsync.kafka.batches import BatchInput
from qbsync.kafka.topics import ACCOUNT_EVENTS, QBO_CUSTOMERS
from qbsync.retry import Backoff, pause_after_failure
from qbsync.runtime import Runtime, settings_or_exit
from qbsync.streaming import create_app, run_worker
from qbsync.sync.advance import RunAdvancer
from qbsync.sync.removal import delink_account, delink_gone_customers
from schemas import AccountEvent, CustomerRecord

SERVICE = "matcher"
log = logging.getLogger("qbsync.matcher")

settings = settings_or_exit(SERVICE)
runtime = Runtime(SERVICE, settings)
app = create_app(SERVICE, settings, with_agents=False)
TICK_SECONDS = 0.5


async def keep_accounts(events: list[AccountEvent]) -> None:
    await store_accounts(runtime.pool, events)
    for event in events:
        if event.type == "account.archived":
            await delink_account(
                runtime.pool, event.firm_id, event.account.id, "account archived in Liscio"
            )


async def keep_customers(records: list[CustomerRecord]) -> None:
    await store_customers(runtime.pool, records)
    gone: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.deleted or not record.active:
            gone[record.realm_id].append(record.customer_id)
    for realm_id, customer_ids in gone.items():
        await delink_gone_customers(runtime.pool, realm_id, customer_ids)


BATCH_INPUTS = (
    BatchInput(ACCOUNT_EVENTS, AccountEvent, keep_accounts),
    BatchInput(QBO_CUSTOMERS, CustomerRecord, keep_customers),
)


@app.task
async def advance_runs() -> None:
    """Every TICK_SECONDS (cancelled when the app stops). A failed tick (PostgreSQL down,
    say) is logged and tried again after a pause: it must not crash the matcher."""
    advancer = RunAdvancer(
        runtime.pool, runtime.quickbooks, stall_seconds=settings.QBSYNC_RUN_STALL_SECONDS
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
