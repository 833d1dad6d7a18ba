"""The matcher: keeps each firm's accounts and customers, links them by name during a
Sync Now, and delinks pairs whose account or customer went away.

Its two bulk input topics are read a batch at a time by a BatchConsumer
(qbsync/kafka/batches.py: handling a message at a time would cost more CPU per record than
the matcher can afford). A loop moves Sync Now runs through their match and push steps
every half second; another publishes the outbox (link events, fill-field commands).
"""

from __future__ import annotations

import asyncio

from qbsync.bootstrap import consume, group_of, run
from qbsync.kafka.batches import BatchConsumer, BatchInput
from qbsync.kafka.topics import ACCOUNT_EVENTS, QBO_CUSTOMERS
from qbsync.retry import Backoff, pause_after_failure
from qbsync.runtime import Route, Runtime
from qbsync.sync import copies
from qbsync.sync.advance import RunAdvancer
from qbsync.waiting import wait_for_event
from schemas import AccountEvent, CustomerRecord

SERVICE = "matcher"
TICK_SECONDS = 0.5


class Matcher:
    routes: list[Route] = []

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def keep_accounts(self, events: list[AccountEvent]) -> None:
        await copies.keep_accounts(self.runtime.uow, events)

    async def keep_customers(self, records: list[CustomerRecord]) -> None:
        await copies.keep_customers(self.runtime.uow, records)

    async def advance_runs(self, stopping: asyncio.Event) -> None:
        """Every TICK_SECONDS. A failed tick (PostgreSQL down, say) is logged and tried
        again after a pause: it must not stop the matcher."""
        runtime = self.runtime
        advancer = RunAdvancer(
            runtime.uow, runtime.quickbooks, stall_seconds=runtime.settings.QBSYNC_RUN_STALL_SECONDS
        )
        backoff = Backoff()
        while not stopping.is_set():
            try:
                await advancer.tick()
            except Exception as exc:
                await pause_after_failure("advancing sync runs", exc, backoff, stopping)
                continue
            backoff.reset()
            await wait_for_event(stopping, TICK_SECONDS)

    async def serve(self, stopping: asyncio.Event) -> None:
        settings = self.runtime.settings
        consumer = BatchConsumer(
            settings.KAFKA_BOOTSTRAP_SERVERS,
            settings.QBSYNC_TOPIC_PREFIX,
            group_of(SERVICE, settings),
            [
                BatchInput(ACCOUNT_EVENTS, AccountEvent, self.keep_accounts),
                BatchInput(QBO_CUSTOMERS, CustomerRecord, self.keep_customers),
            ],
            self.runtime.dead_letters,
            connect_attempts=settings.QBSYNC_CONNECT_ATTEMPTS,
        )
        await consume(stopping, [consumer], [self.advance_runs, self.runtime.outbox.run])


def main() -> None:
    run(SERVICE, Matcher)
