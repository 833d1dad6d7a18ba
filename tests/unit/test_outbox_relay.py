"""The outbox relay keeps trying while a dependency is down, waiting longer each time (one
log line per attempt, not four a second), and goes back to its pace once it publishes."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from qbsync import retry
from qbsync.db import outbox
from qbsync.db.outbox import MAX_RETRY_SECONDS, OutboxRelay


async def test_failures_wait_longer_each_time_up_to_the_cap_and_success_resets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopping = asyncio.Event()
    outcomes: list[Exception | int] = [OSError("down")] * 8 + [3, 0]
    waits: list[float] = []

    async def publish_once(self: OutboxRelay, limit: int = 5000) -> int:
        outcome = outcomes.pop(0) if outcomes else 0
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def recorded_wait(event: asyncio.Event, seconds: float) -> bool:
        waits.append(seconds)
        if not outcomes:
            stopping.set()
        return event.is_set()

    monkeypatch.setattr(OutboxRelay, "publish_once", publish_once)
    monkeypatch.setattr(outbox, "wait_for_event", recorded_wait)  # its pace
    monkeypatch.setattr(retry, "wait_for_event", recorded_wait)  # its pauses after a failure
    relay = OutboxRelay(pool=cast(Any, None), producer=cast(Any, None), interval=0.25)
    await asyncio.wait_for(relay.run(stopping), 1)
    cap = MAX_RETRY_SECONDS
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, cap, cap, cap]
    assert len(waits) == 9 and waits[-1] == 0.25  # then its pace again
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=False)), waits
