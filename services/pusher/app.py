"""The pusher: turns Liscio account events into QuickBooks customer writes.

An `AcknowledgingConsumer` (qbsync/kafka/acks.py) reads `liscio.account-events` and hands
each event to a dispatcher keyed by account: one account's events are applied in order,
different accounts (and so different firms and realms) concurrently, and a partition's
offset is committed only past events that were applied. Events of an account that arrive
while its earlier ones are being applied wait, and an update arriving behind a waiting
update stands for both at once (the older of the two is acknowledged and marked processed
before the newer is applied): under a backlog (a burst, a throttled realm) superseded states
are never written, and the read-ahead holds each account's latest state rather than
thousands of superseded ones, so every firm keeps work ready for its next window.

Accounts of one firm that are ready at the same time are applied together
(`GroupedRunner`): one transaction and a few statements for all of them, their QuickBooks
calls concurrent. A firm may have FIRM_BATCHES_IN_FLIGHT such transactions at once, so an
event arriving while its firm's batch is in flight starts another instead of waiting for it
(keying the dispatcher itself by firm made every event wait for that batch: three times the
steady-state p99, see bench/README.md). It also bounds what one throttled realm holds: its
transactions wait in its limiter holding a database connection each, and the pool is
shared by every firm.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError

from qbsync import tracing
from qbsync.bootstrap import consume, group_of, run
from qbsync.dispatch import GroupedRunner, KeyedDispatcher
from qbsync.kafka.acks import Ack, AckedInput, AcknowledgingConsumer, Record
from qbsync.kafka.topics import ACCOUNT_EVENTS
from qbsync.observability import observe_message
from qbsync.retry import Backoff, is_transient, pause_after_failure
from qbsync.runtime import Route, Runtime
from qbsync.sync.account_events import (
    QueuedEvent,
    absorb,
    handle_account_events,
    mark_superseded,
    reconcile_unfinished_creates,
)
from schemas import AccountEvent

SERVICE = "pusher"
log = logging.getLogger("qbsync.pusher")

# How many events may wait unapplied (an update absorbed by a later one no longer counts).
# Under a backlog (a burst, a throttled realm) it bounds how many accounts have a state
# waiting; an event costs a few KB while it waits, and a crash re-reads what waited.
READ_AHEAD_EVENTS = 20_000
# Transactions one firm may have in flight, and accounts in each (bounding its locks).
FIRM_BATCHES_IN_FLIGHT = 2
ACCOUNTS_PER_BATCH = 250
# How long a stopping pusher lets the applies under way finish (their events are then
# committed); what is still running after that is cancelled and its events come again.
STOP_GRACE_SECONDS = 5.0


class Pusher:
    routes: list[Route] = []

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.firm_batches: GroupedRunner[list[QueuedEvent]] = GroupedRunner(
            self.apply_account_queues,
            concurrency=FIRM_BATCHES_IN_FLIGHT,
            max_items=ACCOUNTS_PER_BATCH,
        )
        self.dispatcher: KeyedDispatcher[QueuedEvent] = KeyedDispatcher(
            self.apply_events, capacity=READ_AHEAD_EVENTS, absorb=absorb
        )

    async def take_event(self, record: Record, ack: Ack) -> None:
        """Queue one message of liscio.account-events; `ack` once its event is applied."""
        try:
            parsed = AccountEvent.model_validate_json(record.value or b"")
        except ValidationError as exc:
            await self.runtime.dead_letters.send(ACCOUNT_EVENTS, record, exc)
            await ack()
            return
        key = f"{parsed.firm_id}:{parsed.account.id}"
        await self.dispatcher.submit(key, QueuedEvent(parsed, record), ack)

    async def apply_events(self, key: str, queued: list[QueuedEvent]) -> None:
        """The queued events of one account (the dispatcher's key), counted once however
        many rounds they take. A transient failure (PostgreSQL, Kafka, QuickBooks once its
        client's attempts are spent) is waited out and the events applied again: the
        change must not be lost. Any other failure dead-letters them with the reason."""
        absorbed = [event_id for item in queued for event_id in item.absorbed]
        events = [item.event for item in queued]
        backoff = Backoff(first=1.0, cap=30.0)
        with observe_message(ACCOUNT_EVENTS) as observed:
            while True:
                try:
                    await mark_superseded(self.runtime.uow, absorbed)
                    await self.firm_batches.run(events[0].firm_id, queued)
                    return
                except Exception as exc:
                    if is_transient(exc):
                        await pause_after_failure(f"account events of {key}", exc, backoff)
                        continue
                    log.error("account events failed", extra={"key": key}, exc_info=exc)
                    observed.mark_failed()
                    for item in queued:
                        await self.runtime.dead_letters.send(ACCOUNT_EVENTS, item.message, exc)
                    return

    async def apply_account_queues(self, queues: list[list[QueuedEvent]]) -> None:
        """The queued events of several accounts of one firm, together (one span: it
        continues the trace of the first event's message and links to the others')."""
        items = [item for queued in queues for item in queued]
        events = [item.event for item in items]
        with tracing.batch_span(
            "pusher apply", [item.message for item in items], {"qbsync.firm_id": events[0].firm_id}
        ):
            await handle_account_events(self.runtime.uow, self.runtime.quickbooks, events)

    async def finish_applies_under_way(self) -> None:
        await self.dispatcher.stop(STOP_GRACE_SECONDS)

    async def reconcile(self, stopping: asyncio.Event) -> None:
        """Once at start; while QuickBooks or PostgreSQL is unavailable it is tried again
        after a pause (stopping instead would restart the pusher into the same failure).
        The events of those creates were not acknowledged, so they come again meanwhile."""
        backoff = Backoff(cap=60.0)
        while not stopping.is_set():
            try:
                finished = await reconcile_unfinished_creates(
                    self.runtime.uow, self.runtime.quickbooks
                )
            except Exception as exc:
                await pause_after_failure("reconciling unfinished creates", exc, backoff, stopping)
                continue
            if finished:
                log.info("reconciled unfinished customer creates", extra={"count": finished})
            return

    async def serve(self, stopping: asyncio.Event) -> None:
        settings = self.runtime.settings
        consumer = AcknowledgingConsumer(
            settings.KAFKA_BOOTSTRAP_SERVERS,
            settings.QBSYNC_TOPIC_PREFIX,
            group_of(SERVICE, settings),
            AckedInput(
                ACCOUNT_EVENTS,
                self.take_event,
                room=self.dispatcher.room,
                finish=self.finish_applies_under_way,
            ),
            connect_attempts=settings.QBSYNC_CONNECT_ATTEMPTS,
        )
        await consume(stopping, [consumer], [self.reconcile, self.runtime.outbox.run])


def main() -> None:
    run(SERVICE, Pusher)
