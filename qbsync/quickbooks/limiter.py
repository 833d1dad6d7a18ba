"""Staying inside QuickBooks' per-realm limits: N requests per rolling window, M in flight.

QuickBooks starts counting a request when it *receives* it, which is some unknown time after
we send it. So a request counts in our window from the moment it is sent until
`window_seconds` after its answer arrived (or its failure was seen): that span always covers
the server's [arrival, arrival + window), whatever the latency, so the client never exceeds
the limit the server enforces, and it wastes only one round trip per slot.

`SlidingWindow` is the pure bookkeeping (a log of timestamps, not fixed buckets);
`RealmLimiter` is the asyncio gate built on it; `Limiters` keeps one per realm.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from qbsync.config import Settings


@dataclass(frozen=True)
class Limits:
    max_per_window: int = 500
    window_seconds: float = 60.0
    max_in_flight: int = 10
    # QuickBooks also allows at most 40 batch requests a minute (their items count above too).
    max_batches_per_window: int = 40
    # Extra seconds a finished request stays counted, for clock or proxy slack.
    safety_margin_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_per_window=settings.QBO_MAX_REQUESTS_PER_WINDOW,
            window_seconds=settings.QBO_RATE_WINDOW_SECONDS,
            max_in_flight=settings.QBO_MAX_IN_FLIGHT,
        )


class SlidingWindow:
    """Weights counted from `start` until `span` seconds after `finish` (pure; times given)."""

    def __init__(self, capacity: int, span: float) -> None:
        if capacity < 1 or span <= 0:
            raise ValueError("a window needs a capacity of at least 1 and a positive span")
        self.capacity = capacity
        self.span = span
        self._in_flight = 0
        # (finished_at, weight), appended as answers arrive, so ordered by finished_at.
        self._finished: deque[tuple[float, int]] = deque()
        self._finished_weight = 0

    def _expire(self, now: float) -> None:
        while self._finished and self._finished[0][0] + self.span <= now:
            self._finished_weight -= self._finished.popleft()[1]

    def occupied(self, now: float) -> int:
        self._expire(now)
        return self._in_flight + self._finished_weight

    def has_room(self, weight: int, now: float) -> bool:
        return self.occupied(now) + weight <= self.capacity

    def room_at(self, weight: int, now: float) -> float | None:
        """The earliest time >= now at which `weight` fits if nothing else starts or finishes,
        or None when it cannot fit until some request still in flight finishes."""
        excess = self.occupied(now) + weight - self.capacity
        if excess <= 0:
            return now
        freed = 0
        for finished_at, entry_weight in self._finished:
            freed += entry_weight
            if freed >= excess:
                return finished_at + self.span
        return None

    def start(self, weight: int) -> None:
        self._in_flight += weight

    def finish(self, weight: int, now: float) -> None:
        self._in_flight -= weight
        if self._finished and now < self._finished[-1][0]:
            now = self._finished[-1][0]  # keep the log ordered even if a clock went backwards
        self._finished.append((now, weight))
        self._finished_weight += weight


class RealmLimiter:
    """The gate every request to one realm passes. Waiters are admitted first come, first
    served, so a batch (weight up to 30) is not starved by single requests."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        span = limits.window_seconds + limits.safety_margin_seconds
        self.limits = limits
        self._clock = clock
        self._requests = SlidingWindow(limits.max_per_window, span)
        self._batches = SlidingWindow(limits.max_batches_per_window, span)
        self._in_flight = asyncio.Semaphore(limits.max_in_flight)
        self._admission = asyncio.Lock()
        self._finished = asyncio.Event()
        self.in_flight = 0

    def occupied(self) -> int:
        """Requests counted in the window right now (in flight or recently answered)."""
        return self._requests.occupied(self._clock())

    @asynccontextmanager
    async def slot(self, weight: int = 1, *, batch: bool = False) -> AsyncIterator[float]:
        """Wait for room for one request carrying `weight` calls; yields the seconds waited.
        The request counts from entry until `window_seconds` after the block exits."""
        if weight < 1 or weight > self.limits.max_per_window:
            raise ValueError(f"a request must weigh 1..{self.limits.max_per_window}, not {weight}")
        began = self._clock()
        await self._in_flight.acquire()
        try:
            async with self._admission:
                await self._wait_for_room(weight, batch)
                self._requests.start(weight)
                if batch:
                    self._batches.start(1)
        except BaseException:
            self._in_flight.release()
            raise
        self.in_flight += 1
        try:
            yield self._clock() - began
        finally:
            now = self._clock()
            self._requests.finish(weight, now)
            if batch:
                self._batches.finish(1, now)
            self.in_flight -= 1
            self._in_flight.release()
            self._finished.set()

    async def _wait_for_room(self, weight: int, batch: bool) -> None:
        while True:
            now = self._clock()
            moments = [self._requests.room_at(weight, now)]
            if batch:
                moments.append(self._batches.room_at(1, now))
            if None in moments:
                # Everything counted is still in flight: only an answer can change that.
                self._finished.clear()
                await self._finished.wait()
                continue
            ready_at = max(moment for moment in moments if moment is not None)
            if ready_at <= now:
                return
            await asyncio.sleep(ready_at - now)


class Limiters:
    """One RealmLimiter per realm, shared by everything in the process using one client."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._by_realm: dict[str, RealmLimiter] = {}

    def for_realm(self, realm_id: str) -> RealmLimiter:
        limiter = self._by_realm.get(realm_id)
        if limiter is None:
            limiter = self._by_realm[realm_id] = RealmLimiter(self.limits, self._clock)
        return limiter
