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

from qbsync.dispatch import GroupedRunner, KeyedDispatcher
from qbsync.kafka.acks import Ack, AckedInput, Record
from qbsync.kafka.topics import ACCOUNT_EVENTS
from qbsync.observability import observe_message
from qbsync.quickbooks.errors import QuickBooksError
from qbsync.retry import Backoff, is_transient, pause_after_failure
from qbsync.runtime import Runtime, settings_or_exit
from qbsync.streaming import create_app, run_worker
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

settings = settings_or_exit(SERVICE)
runtime = Runtime(SERVICE, settings)
app = create_app(SERVICE, settings, with_agents=False)

RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)
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


async def apply_events(key: str, queued: list[QueuedEvent]) -> None:
    """The queued events of one account (the dispatcher's key), counted once however many
    attempts they take; what finally fails goes to the dead-letter topic."""
    with observe_message(ACCOUNT_EVENTS) as observed:
        error = await apply_with_retries(key, queued)
        if error is not None:
            observed.mark_failed()
            for item in queued:
                await runtime.dead_letters.send(ACCOUNT_EVENTS, item.message, error)


async def apply_with_retries(key: str, queued: list[QueuedEvent]) -> Exception | None:
    """Apply; QuickBooks being unavailable (throttled or down after the client's own
    retries) is waited out: the change must not be lost. Returns what finally failed.
    Raises when PostgreSQL or the network is down (`is_transient`), however long."""
    absorbed = [event_id for item in queued for event_id in item.absorbed]
    events = [item.event for item in queued]
    for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
        try:
            await mark_superseded(runtime.uow, absorbed)
            await firm_batches.run(events[0].firm_id, events)
            return None
        except QuickBooksError as exc:
            if delay is None:
                return exc
            log.warning(
                "QuickBooks unavailable, retrying",
                extra={"key": key, "attempt": attempt, "error": str(exc)},
            )
            await asyncio.sleep(delay)
        except Exception as exc:
            if is_transient(exc):
                raise  # our database or network, not the events: the dispatcher tries again
            log.exception("account events failed", extra={"key": key})
            return exc
    raise AssertionError("unreachable")  # pragma: no cover


async def apply_account_queues(queues: list[list[AccountEvent]]) -> None:
    """The queued events of several accounts of one firm, together."""
    events = [event for queued in queues for event in queued]
    await handle_account_events(runtime.uow, runtime.quickbooks, events)


firm_batches: GroupedRunner[list[AccountEvent]] = GroupedRunner(
    apply_account_queues, concurrency=FIRM_BATCHES_IN_FLIGHT, max_items=ACCOUNTS_PER_BATCH
)
dispatcher: KeyedDispatcher[QueuedEvent] = KeyedDispatcher(
    apply_events, capacity=READ_AHEAD_EVENTS, absorb=absorb
)


async def take_event(record: Record, ack: Ack) -> None:
    """Queue one message of liscio.account-events; `ack` once its event is applied."""
    try:
        parsed = AccountEvent.model_validate_json(record.value or b"")
    except ValidationError as exc:
        await runtime.dead_letters.send(ACCOUNT_EVENTS, record, exc)
        await ack()
        return
    key = f"{parsed.firm_id}:{parsed.account.id}"
    await dispatcher.submit(key, QueuedEvent(parsed, record), ack)


async def finish_applies_under_way() -> None:
    await dispatcher.stop(STOP_GRACE_SECONDS)


ACCOUNT_EVENTS_INPUT = AckedInput(
    ACCOUNT_EVENTS, take_event, room=dispatcher.room, finish=finish_applies_under_way
)


@app.task
async def reconcile() -> None:
    """Once at start; while QuickBooks or PostgreSQL is unavailable it is tried again after
    a pause (crashing the pusher instead would restart it into the same failure). The
    events of those creates were not acknowledged, so they come again meanwhile too."""
    backoff = Backoff(cap=60.0)
    while True:
        try:
            finished = await reconcile_unfinished_creates(runtime.uow, runtime.quickbooks)
        except Exception as exc:
            await pause_after_failure("reconciling unfinished creates", exc, backoff)
            continue
        if finished:
            log.info("reconciled unfinished customer creates", extra={"count": finished})
        return


@app.task
async def publish_outbox() -> None:
    await runtime.outbox.run()


def main() -> None:
    run_worker(app, runtime, acked_input=ACCOUNT_EVENTS_INPUT)
