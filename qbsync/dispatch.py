"""Ordered per key, concurrent across keys.

The pusher's events of one account must be applied in order, but one slow or throttled
realm must not hold up every other firm. Items are queued per key; each key with work has
one worker; at most `capacity` items wait in all (the consumer pauses beyond that).
A worker hands its handler everything queued for its key at once, so a handler may skip
states that a later one supersedes. With `absorb`, an arriving item that supersedes the
item waiting last for its key takes that item's place at once (the waiting one is done):
under a long backlog the read-ahead then holds states worth applying, not superseded ones,
so every key keeps something to apply. `GroupedRunner` then lets the handlers of keys that
belong together (one firm's accounts) share one call when they are ready at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from qbsync.retry import Backoff, pause_after_failure

T = TypeVar("T")
Done = Callable[[], Awaitable[object]]


class KeyedDispatcher(Generic[T]):
    """`absorb(waiting, arriving)` returns the one item that stands for both, or None when
    `arriving` must queue behind `waiting` (an item already being handled is never
    absorbed). The waiting item's `done` is awaited when it is absorbed, so the caller
    must make that safe (the pusher acknowledges the event; the one that absorbed it is
    acknowledged only after it was applied, and Kafka commits no offset past it before).

    An item's `done` is awaited only once the handler returned for it: a handler that
    raises gets the same items again after a pause (from `first_retry_delay`, doubling up
    to 30 s), and one cancelled by `stop` leaves them not done, so that their messages are
    not acknowledged and come again. Handlers must make a repeat safe."""

    def __init__(
        self,
        handle: Callable[[str, list[T]], Awaitable[None]],
        capacity: int = 2000,
        absorb: Callable[[T, T], T | None] | None = None,
        first_retry_delay: float = 1.0,
    ) -> None:
        self._handle = handle
        self._capacity = asyncio.Semaphore(capacity)
        self._room = capacity
        self._absorb = absorb
        self._first_retry_delay = first_retry_delay
        self._queues: dict[str, list[tuple[T, Done]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    async def submit(self, key: str, item: T, done: Done) -> None:
        """Queue `item`; `done` is awaited after the handler finished with it. Once the
        dispatcher stops, an item is neither queued nor done."""
        if self._stopping.is_set():
            return
        waiting = self._queues.get(key)
        if waiting and self._absorb is not None:
            last, last_done = waiting[-1]
            merged = self._absorb(last, item)
            if merged is not None:
                waiting[-1] = (merged, done)  # takes over the absorbed item's capacity
                await last_done()
                return
        await self._capacity.acquire()
        self._room -= 1
        if self._stopping.is_set():
            return
        self._queues.setdefault(key, []).append((item, done))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key))

    def room(self) -> int:
        """How many more items may be submitted without waiting (absorbed ones cost none)."""
        return self._room

    async def _work(self, key: str) -> None:
        try:
            while not self._stopping.is_set() and (queued := self._queues.pop(key, None)):
                if not await self._handle_until_done(key, [item for item, _ in queued]):
                    return
                for _, done in queued:
                    await done()
                    self._capacity.release()
                    self._room += 1
        finally:
            del self._workers[key]

    async def _handle_until_done(self, key: str, items: list[T]) -> bool:
        """False when the dispatcher stopped before the handler returned for `items`."""
        backoff = Backoff(first=self._first_retry_delay, cap=30.0)
        while not self._stopping.is_set():
            try:
                await self._handle(key, items)
                return True
            except Exception as exc:
                await pause_after_failure(f"handling {key}", exc, backoff, self._stopping)
        return False

    async def stop(self, grace: float) -> None:
        """Start no more handler calls; the calls under way get `grace` seconds to finish
        (their items are then done), the rest are cancelled. Waiting items stay not done."""
        self._stopping.set()
        workers = list(self._workers.values())
        if not workers:
            return
        _, late = await asyncio.wait(workers, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


class GroupedRunner(Generic[T]):
    """Items of one group that are ready at about the same time are handled together.

    `run(group, item)` returns once `item` has been handled. While fewer than `concurrency`
    handler calls of its group are running, one starts at once with everything of the
    group then waiting (at most `max_items`); otherwise the item waits and goes with the
    next. So a lone item never waits for a batch in flight, and under a backlog each call
    takes many items. When a call over several items fails, each item is handled again on
    its own, so only the failing ones see an error (handlers must make that repeat safe).
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[None]],
        *,
        concurrency: int,
        max_items: int,
    ) -> None:
        if concurrency < 1 or max_items < 1:
            raise ValueError("concurrency and max_items must be at least 1")
        self._handle = handle
        self._concurrency = concurrency
        self._max_items = max_items
        self._waiting: dict[str, list[tuple[T, asyncio.Future[None]]]] = {}
        self._running: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, group: str, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(group, []).append((item, future))
        running = self._running.get(group, 0)
        if running < self._concurrency:
            self._running[group] = running + 1
            task = asyncio.create_task(self._drain(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await future

    async def _drain(self, group: str) -> None:
        try:
            while waiting := self._waiting.pop(group, None):
                taken, rest = waiting[: self._max_items], waiting[self._max_items :]
                if rest:
                    self._waiting[group] = rest
                await self._handle_together(taken)
        finally:
            self._running[group] -= 1
            if not self._running[group]:
                del self._running[group]

    async def _handle_together(self, taken: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._handle([item for item, _ in taken])
        except Exception as exc:
            if len(taken) == 1:
                _settle(taken[0][1], exc)
                return
            alone = await asyncio.gather(
                *(self._handle([item]) for item, _ in taken), return_exceptions=True
            )
            for (_, future), result in zip(taken, alone, strict=True):
                _settle(future, result)
        except BaseException:
            for _, future in taken:
                future.cancel()
            raise
        else:
            for _, future in taken:
                _settle(future, None)


def _settle(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if outcome is None:
        future.set_result(None)
    elif isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.cancel()
