"""Waiting on an asyncio event with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; returns whether it was set. (Not
    `wait_for`, which runs the wait in a task of its own: the quota's worker waits like
    this after every take.)"""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def finish_or_cancel(tasks: Collection[asyncio.Task[Any]], seconds: float) -> bool:
    """Give `tasks` `seconds` to end by themselves, then cancel what still runs; True if
    all ended by themselves. Their exceptions stay on the tasks, for their owners."""
    if not tasks:
        return True
    _, unfinished = await asyncio.wait(tasks, timeout=seconds)
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return not unfinished
