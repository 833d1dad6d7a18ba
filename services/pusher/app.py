"""The pusher: turns Liscio account events into QuickBooks customer writes.

One agent reads `liscio.account-events` with manual acknowledgements and hands each event
to a dispatcher keyed by account: one account's events are applied in order, different
accounts (and so different firms and realms) concurrently, and an event's offset is
committed only after it was applied.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from pydantic import ValidationError

from qbsync.dispatch import KeyedDispatcher
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


async def apply_events(key: str, events: list[tuple[AccountEvent, Any]]) -> None:
    """All queued events of one account. QuickBooks being unavailable (throttled or down
    after the client's own retries) is waited out: the change must not be lost. Anything
    else goes to the dead-letter topic with its reason, and the account moves on."""
    values = [value for value, _ in events]
    for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
        try:
            with observe_message(ACCOUNT_EVENTS):
                await handle_account_events(runtime.pool, runtime.quickbooks, values)
            return
        except QuickBooksError as exc:
            if delay is None:
                error: Exception = exc
                break
            log.warning(
                "QuickBooks unavailable, retrying",
                extra={"key": key, "attempt": attempt, "error": str(exc)},
            )
            await asyncio.sleep(delay)
        except Exception as exc:
            log.exception("account events failed", extra={"key": key})
            error = exc
            break
    for _, message in events:
        await runtime.dead_letters.send(
            ACCOUNT_EVENTS, message.partition, message.offset, message.key, message.value, error
        )


dispatcher: KeyedDispatcher[tuple[AccountEvent, Any]] = KeyedDispatcher(apply_events)


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
