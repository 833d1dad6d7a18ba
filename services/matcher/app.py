"""The matcher: keeps each firm's accounts and customers and links them by name."""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from qbsync.db.accounts import store_account
from qbsync.kafka.topics import ACCOUNT_EVENTS
from qbsync.runtime import Runtime, settings_or_exit
from qbsync.streaming import create_app, input_topic, run_worker
from schemas import AccountEvent

SERVICE = "matcher"
log = logging.getLogger("qbsync.matcher")

settings = settings_or_exit(SERVICE)
runtime = Runtime(SERVICE, settings)
app = create_app(SERVICE, settings)
account_events = input_topic(app, settings, ACCOUNT_EVENTS)


@app.agent(account_events)
async def keep_accounts(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
        try:
            account_event = AccountEvent.model_validate_json(message.value)
        except ValidationError as exc:
            await runtime.dead_letters.send(
                ACCOUNT_EVENTS, message.partition, message.offset, message.key, message.value, exc
            )
            continue
        await store_account(runtime.pool, account_event)


def main() -> None:
    run_worker(app, runtime)
