"""The pusher: turns Liscio account events into QuickBooks customer writes.

One agent reads `liscio.account-events` with manual acknowledgements and hands each event
to a dispatcher keyed by account: one account's events are applied in order, different
accounts (and so different firms and realms) concurrently, and an event's offset is
committed only after it was applied. Events of an account that arrive while its earlier
ones are being applied wait, and consecutive updates among them collapse into the last:
under a backlog (a burst, a throttled realm) superseded states are never written.

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
from functools import partial
from typing import Any

from pydantic import ValidationError

from qbsync.dispatch import GroupedRunner, KeyedDispatcher
from qbsync.kafka.topics import ACCOUNT_EVENTS
from qbsync.observability import observe_message
from qbsync.quickbooks.errors import QuickBooksError
from qbsync.runtime import Runtime, settings_or_exit
from qbsync.streaming import create_app, input_topic, run_worker
from qbsync.sync.account_events import handle_account_events, reconcile_unfinished_creates
from schemas import AccountEvent

SERVICE = "pusher"
log = logging.getLogger("qbsync.pusher")

settings = settings_or_exit(SERVICE)
runtime = Runtime(SERVICE, settings)
app = create_app(SERVICE, settings)
account_events = input_topic(app, settings, ACCOUNT_EVENTS)

RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)
# How far the pusher reads ahead of what it has applied. Under a backlog (a burst, a
# throttled realm) a deeper queue lets more of an account's superseded states collapse into
# one write; an event costs a few KB while it waits, and a crash re-reads what waited.
READ_AHEAD_EVENTS = 20_000
# Transactions one firm may have in flight, and accounts in each (bounding its locks).
FIRM_BATCHES_IN_FLIGHT = 2
ACCOUNTS_PER_BATCH = 250


async def apply_events(key: str, events: list[tuple[AccountEvent, Any]]) -> None:
    """All queued events of one key. When they fail for a reason other than QuickBooks
    being unavailable and they span several accounts, each account's events are tried on
    their own, so that only the failing account's go to the dead-letter topic."""
    error = await apply_with_retries(key, [value for value, _ in events])
    if error is None:
        return
    by_account: dict[str, list[tuple[AccountEvent, Any]]] = {}
    for item in events:
        by_account.setdefault(item[0].account.id, []).append(item)
    if isinstance(error, QuickBooksError) or len(by_account) == 1:
        await dead_letter(events, error)
        return
    for account_id, queued in by_account.items():
        failure = await apply_with_retries(f"{key}:{account_id}", [value for value, _ in queued])
        if failure is not None:
            await dead_letter(queued, failure)


async def apply_with_retries(key: str, values: list[AccountEvent]) -> Exception | None:
    """Apply; QuickBooks being unavailable (throttled or down after the client's own
    retries) is waited out: the change must not be lost. Returns what finally failed."""
    for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
        try:
            with observe_message(ACCOUNT_EVENTS):
                await firm_batches.run(values[0].firm_id, values)
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
            log.exception("account events failed", extra={"key": key})
            return exc
    raise AssertionError("unreachable")  # pragma: no cover


async def dead_letter(events: list[tuple[AccountEvent, Any]], error: Exception) -> None:
    for _, message in events:
        await runtime.dead_letters.send(
            ACCOUNT_EVENTS, message.partition, message.offset, message.key, message.value, error
        )


async def apply_account_queues(queues: list[list[AccountEvent]]) -> None:
    """The queued events of several accounts of one firm, together."""
    events = [event for queued in queues for event in queued]
    await handle_account_events(runtime.pool, runtime.quickbooks, events)


firm_batches: GroupedRunner[list[AccountEvent]] = GroupedRunner(
    apply_account_queues, concurrency=FIRM_BATCHES_IN_FLIGHT, max_items=ACCOUNTS_PER_BATCH
)
dispatcher: KeyedDispatcher[tuple[AccountEvent, Any]] = KeyedDispatcher(
    apply_events, capacity=READ_AHEAD_EVENTS
)


@app.agent(account_events)
async def account_event_agent(stream: Any) -> None:
    manual = stream.noack()
    async for event in manual.events():
        message = event.message
        try:
            parsed = AccountEvent.model_validate_json(message.value)
        except ValidationError as exc:
            await runtime.dead_letters.send(
                ACCOUNT_EVENTS, message.partition, message.offset, message.key, message.value, exc
            )
            await manual.ack(event)
            continue
        key = f"{parsed.firm_id}:{parsed.account.id}"
        await dispatcher.submit(key, (parsed, message), partial(manual.ack, event))


@app.task
async def reconcile() -> None:
    finished = await reconcile_unfinished_creates(runtime.pool, runtime.quickbooks)
    if finished:
        log.info("reconciled unfinished customer creates", extra={"count": finished})


@app.task
async def publish_outbox() -> None:
    await runtime.outbox.run()


def main() -> None:
    run_worker(app, runtime)
