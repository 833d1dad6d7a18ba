"""Ordered per key, concurrent across keys.

The pusher's events of one account must be applied in order, but one slow or throttled
realm must not hold up every other firm. Items are queued per key; each key with work has
one worker; at most `capacity` items wait in all (the consumer pauses beyond that).
A worker hands its handler everything queued for its key at once, so a handler may skip
states that a later one supersedes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
Done = Callable[[], Awaitable[object]]


class KeyedDispatcher(Generic[T]):
    def __init__(
        self, handle: Callable[[str, list[T]], Awaitable[None]], capacity: int = 2000
    ) -> None:
        self._handle = handle
        self._capacity = asyncio.Semaphore(capacity)
        self._queues: dict[str, list[tuple[T, Done]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, key: str, item: T, done: Done) -> None:
        """Queue `item`; `done` is awaited after the handler finished with it."""
        await self._capacity.acquire()
        self._queues.setdefault(key, []).append((item, done))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key))

    async def _work(self, key: str) -> None:
        try:
            while queued := self._queues.pop(key, None):
                try:
                    await self._handle(key, [item for item, _ in queued])
                finally:
                    for _, done in queued:
                        await done()
                        self._capacity.release()
        finally:
            del self._workers[key]

    @property
    def busy_keys(self) -> int:
        return len(self._workers)

    async def close(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
