"""Staying inside QuickBooks' per-realm limits: N requests per rolling window, M in flight.

QuickBooks starts counting a request when it *receives* it, which is some unknown time after
we send it. So a request counts in our window from the moment it is sent until
`window_seconds` after its answer arrived (or its failure was seen): that span always covers
the server's [arrival, arrival + window), whatever the latency, so the client never exceeds
the limit the server enforces, and it wastes only one round trip per slot.

`SlidingWindow` is the pure bookkeeping (a log of timestamps, not fixed buckets);
`RealmLimiter` is the asyncio gate built on it; `Limiters` keeps one per realm. Those count
one process's requests only.

QuickBooks counts a realm's requests across every process of the app, so the services use
`SharedLimiters`: each process takes grants of a few calls at a time from a ledger shared
by the deployment (`qbsync/db/quota.py`, one PostgreSQL round trip per grant) and spends
them locally. Waiters are served by priority: work a person waits for (`INTERACTIVE`)
before bulk work (`BULK`, set with `bulk_work()` around a Sync Now's import and first sync),
in this process and, through the ledger, across processes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from qbsync.config import Settings
from qbsync.waiting import wait_for_event

log = logging.getLogger("qbsync.quickbooks")


class Priority(IntEnum):
    INTERACTIVE = 0  # a person waits: the API's create, a live Liscio change
    BULK = 1  # a Sync Now's import pages and first sync, CDC rounds


_priority: ContextVar[Priority] = ContextVar("quickbooks_priority", default=Priority.INTERACTIVE)


@contextmanager
def bulk_work() -> Iterator[None]:
    """QuickBooks calls made inside (and in tasks started inside) wait behind interactive ones."""
    token = _priority.set(Priority.BULK)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> Priority:
    return _priority.get()


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
    async def slot(
        self, weight: int = 1, *, batch: bool = False, metered: bool = False
    ) -> AsyncIterator[float]:
        """Wait for room for one request carrying `weight` calls; yields the seconds waited.
        The request counts from entry until `window_seconds` after the block exits.
        (`metered` matters only to the shared ledger, which counts a month's reads.)"""
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


# -- Shared by the deployment ---------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    calls: int  # calls that may start now
    slots: int  # requests this process may have in flight
    retry_in: float | None  # seconds until the oldest finished call leaves the window


@dataclass(frozen=True)
class TakeRequest:
    realm_id: str
    finished: int  # calls finished since the last take
    reads: int  # of those, QuickBooks' metered reads (query, read, CDC)
    # The finished calls in groups of (calls, seconds since the last of the group finished).
    finished_groups: tuple[tuple[int, float], ...]
    in_flight_calls: int
    in_flight: int  # requests
    want_calls: int
    want_slots: int
    priority: int
    limit: int
    window_seconds: float
    max_in_flight: int
    chunk: int
    ttl_seconds: float


class QuotaLedger(Protocol):
    async def take(self, request: TakeRequest) -> Grant: ...


@dataclass(frozen=True)
class SharingTerms:
    """How a process takes its share. `lease_seconds`: the longest a process keeps calls it
    does not use or finished calls unreported (what it holds counts for everyone, so this
    is what sharing costs: about lease/window of the quota); `chunk`: calls per grant at
    most (a grant is also at most what the process's slots send in one round)."""

    lease_seconds: float
    chunk: int
    ttl_seconds: float
    # Finished calls are reported in groups this many seconds wide, each counted from its
    # last finish: coarser costs a little quota, finer a longer report.
    report_granularity: float = 0.05

    @classmethod
    def for_limits(cls, limits: Limits) -> SharingTerms:
        lease = min(1.0, limits.window_seconds / 50)
        return cls(
            lease_seconds=lease,
            chunk=max(1, limits.max_per_window // 25),
            ttl_seconds=max(5.0, 10 * lease),
            report_granularity=limits.window_seconds / 200,
        )


def finished_groups(
    finish_times: list[tuple[float, int]], now: float, width: float
) -> tuple[tuple[int, float], ...]:
    """(calls, seconds since the group's last finish) per `width` seconds of finishes."""
    groups: dict[int, list[float]] = {}
    for at, calls in finish_times:
        group = groups.setdefault(int((now - at) / width), [0, now - at])
        group[0] += calls
        group[1] = min(group[1], now - at)
    return tuple((int(calls), ago) for calls, ago in groups.values())


@dataclass(order=True)
class _Waiter:
    priority: int
    sequence: int
    weight: int = field(compare=False)
    admitted: asyncio.Future[None] = field(compare=False)


class SharedRealmLimiter:
    """One realm's gate in this process, spending grants from the shared ledger."""

    def __init__(
        self,
        realm_id: str,
        limits: Limits,
        ledger: QuotaLedger,
        terms: SharingTerms,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.realm_id = realm_id
        self.limits = limits
        self._ledger = ledger
        self._terms = terms
        self._clock = clock
        self._batches = SlidingWindow(
            limits.max_batches_per_window, limits.window_seconds + limits.safety_margin_seconds
        )
        self._waiters: list[_Waiter] = []
        self._sequence = itertools.count()
        self._available = 0  # granted calls not started
        self._slots = 0  # requests we may have in flight
        self.in_flight = 0
        self._in_flight_calls = 0
        self._finished = 0
        self._finished_reads = 0
        self._finish_times: list[tuple[float, int]] = []  # (finished at, calls) unreported
        self._dirty = False  # the ledger's row holds something of ours
        self._last_take = -float("inf")
        self._not_before = -float("inf")
        self._changed = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._worker_saw_starving = False
        self._closing = False
        self.takes = 0

    @asynccontextmanager
    async def slot(
        self, weight: int = 1, *, batch: bool = False, metered: bool = False
    ) -> AsyncIterator[float]:
        if weight < 1 or weight > self.limits.max_per_window:
            raise ValueError(f"a request must weigh 1..{self.limits.max_per_window}, not {weight}")
        began = self._clock()
        if batch:
            await self._batch_room()
        if not self._waiters and self._can_start(weight):
            self._start(weight)
        else:
            waiter = _Waiter(
                int(current_priority()),
                next(self._sequence),
                weight,
                asyncio.get_running_loop().create_future(),
            )
            heapq.heappush(self._waiters, waiter)
            self._wake()
            try:
                await waiter.admitted
            except BaseException:
                if waiter.admitted.done() and not waiter.admitted.cancelled():
                    self._undo_start(weight)  # admitted, then cancelled before it was sent
                else:
                    waiter.admitted.cancel()
                    self._forget_cancelled()
                self._pump()
                raise
        if batch:
            self._batches.start(1)
        try:
            yield self._clock() - began
        finally:
            if batch:
                self._batches.finish(1, self._clock())
            self.in_flight -= 1
            self._in_flight_calls -= weight
            self._finished += weight
            self._finish_times.append((self._clock(), weight))
            if metered:
                self._finished_reads += weight
            self._pump()
            self._wake()

    async def _batch_room(self) -> None:
        # Batches per window stay a per-process count (the services send no batches).
        while True:
            now = self._clock()
            moment = self._batches.room_at(1, now)
            if moment is not None and moment <= now:
                return
            await asyncio.sleep(0.05 if moment is None else max(moment - now, 0.001))

    def _can_start(self, weight: int) -> bool:
        return weight <= self._available and self.in_flight < self._slots

    def _start(self, weight: int) -> None:
        self._available -= weight
        self.in_flight += 1
        self._in_flight_calls += weight

    def _undo_start(self, weight: int) -> None:
        self._available += weight
        self.in_flight -= 1
        self._in_flight_calls -= weight

    def _forget_cancelled(self) -> None:
        self._waiters = [w for w in self._waiters if not w.admitted.done()]
        heapq.heapify(self._waiters)

    def _pump(self) -> None:
        while self._waiters:
            head = self._waiters[0]
            if head.admitted.done():
                heapq.heappop(self._waiters)
                continue
            if not self._can_start(head.weight):
                return
            heapq.heappop(self._waiters)
            self._start(head.weight)
            head.admitted.set_result(None)

    def _wake(self) -> None:
        """After a waiter came or a request finished. The worker, while it sleeps, is woken
        only when it must take sooner than it planned (someone starves who did not): every
        other change can wait for its next planned moment, and a wake per request costs more
        CPU than the request's own bookkeeping."""
        if self._closing:
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._refill(), name=f"quota-{self.realm_id}")
        elif not self._worker_saw_starving and self._starving():
            self._changed.set()

    def _starving(self) -> bool:
        """A waiter could start with a new grant (not merely after our own answers)."""
        if not self._waiters:
            return False
        head = self._waiters[0]
        if head.weight > self._available:
            return True
        return self.in_flight >= self._slots and self._slots < self.limits.max_in_flight

    async def _refill(self) -> None:
        """Takes grants while someone waits, and reports to the ledger at least once a
        lease while this process holds anything of the realm's quota."""
        failures = 0
        while not self._closing:
            self._forget_cancelled_head()
            now = self._clock()
            holding = bool(self._dirty or self._available or self.in_flight or self._finished)
            starving = self._worker_saw_starving = self._starving()
            if not starving and not holding:
                return
            due = self._last_take + self._terms.lease_seconds if holding else float("inf")
            if starving:
                due = min(due, self._not_before)
            if now < due:
                self._changed.clear()
                await wait_for_event(self._changed, due - now)
                continue
            try:
                await self._take()
                failures = 0
            except Exception as exc:  # PostgreSQL away: waiters wait, as for any outage
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    log.warning(
                        "QuickBooks quota ledger unavailable; requests of the realm wait",
                        extra={"realm_id": self.realm_id, "reason": str(exc)},
                    )
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))

    async def aclose(self) -> None:
        """Report what finished and give back what is held (best effort: the ledger
        forgets a silent process's share after its ttl and a window anyway)."""
        # Stopped by a flag, not cancel(): Python 3.11's wait_for can swallow a cancellation.
        self._closing = True
        self._changed.set()
        if self._worker is not None:
            with suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._worker), 2.0)
            if not self._worker.done():
                self._worker.cancel()
            self._worker = None
        for waiter in self._waiters:
            waiter.admitted.cancel()
        self._waiters.clear()
        if self._dirty or self._available or self._finished:
            try:
                await self._take()
            except Exception as exc:
                log.info(
                    "QuickBooks quota not given back at close",
                    extra={"realm_id": self.realm_id, "reason": str(exc)},
                )

    def _startable_calls(self) -> int:
        """The calls of the waiters this process's slots could send in one round: a grant
        counts for everyone from the moment it is given, while QuickBooks counts a call only
        from its arrival, so calls held waiting for a slot of ours are quota nobody uses."""
        waiting = [w for w in self._waiters if not w.admitted.done()]
        return sum(w.weight for w in heapq.nsmallest(max(self._slots, 1), waiting))

    def _forget_cancelled_head(self) -> None:
        while self._waiters and self._waiters[0].admitted.done():
            heapq.heappop(self._waiters)

    async def _take(self) -> None:
        finished, reads = self._finished, self._finished_reads
        finish_times, self._finish_times = self._finish_times, []
        self._finished = self._finished_reads = 0
        returned, self._available = self._available, 0  # nothing starts while we ask
        pending = [w for w in self._waiters if not w.admitted.done()]
        waiting, wanted = len(pending), sum(w.weight for w in pending)
        head_weight = self._waiters[0].weight if self._waiters else 0
        priority = min((w.priority for w in self._waiters), default=int(Priority.BULK))
        request = TakeRequest(
            realm_id=self.realm_id,
            finished=finished,
            reads=reads,
            finished_groups=finished_groups(
                finish_times, self._clock(), self._terms.report_granularity
            ),
            in_flight_calls=self._in_flight_calls,
            in_flight=self.in_flight,
            # All that waits (a grant is at most a chunk): while any of it is short, other
            # processes' less urgent work gives way.
            want_calls=wanted,
            # The requests it could have in flight: a slot it could not use would be one
            # another process's backlog lacks.
            want_slots=min(self.limits.max_in_flight, self.in_flight + waiting) if wanted else 0,
            priority=priority,
            limit=self.limits.max_per_window,
            window_seconds=self.limits.window_seconds + self.limits.safety_margin_seconds,
            max_in_flight=self.limits.max_in_flight,
            chunk=max(min(self._terms.chunk, self._startable_calls()), head_weight),
            ttl_seconds=self._terms.ttl_seconds,
        )
        try:
            grant = await self._ledger.take(request)
        except BaseException:
            self._finished += finished
            self._finished_reads += reads
            self._finish_times[:0] = finish_times
            self._available = returned  # still counted in the ledger as ours
            raise
        self.takes += 1
        now = self._clock()
        self._last_take = now
        self._available = grant.calls
        self._slots = grant.slots
        self._dirty = bool(grant.calls or self.in_flight or grant.slots)
        self._pump()
        if self._starving():
            # Short of calls: more come when the next finished call leaves the window (a
            # partial grant too: waiting a whole lease would leave that room unused).
            # Short of slots: another process gives them back at its next report (at least
            # once a lease).
            # Given all it asked for, it asks again at once: the window may have more calls
            # (it asked for a round's worth: with every slot there is busy, the next round),
            # and its waiters that came during the take want more slots.
            pause = self._terms.lease_seconds
            short_of_calls = self._waiters[0].weight > self._available
            free_slot = self.in_flight < self._slots
            every_slot = self._slots >= self.limits.max_in_flight
            more_calls = short_of_calls and grant.calls >= request.chunk
            more_slots = not free_slot and not every_slot and grant.slots >= request.want_slots
            if (more_calls and (free_slot or every_slot)) or more_slots:
                pause = 0.0
            elif short_of_calls and grant.retry_in is not None:
                pause = min(pause, max(grant.retry_in, 0.002))
            self._not_before = now + pause
        else:
            self._not_before = now


class SharedLimiters:
    """One SharedRealmLimiter per realm, all taking from one ledger."""

    def __init__(
        self,
        limits: Limits,
        ledger: QuotaLedger,
        terms: SharingTerms | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.terms = terms or SharingTerms.for_limits(limits)
        self._ledger = ledger
        self._clock = clock
        self._by_realm: dict[str, SharedRealmLimiter] = {}

    async def aclose(self) -> None:
        await asyncio.gather(*(limiter.aclose() for limiter in self._by_realm.values()))

    def for_realm(self, realm_id: str) -> SharedRealmLimiter:
        limiter = self._by_realm.get(realm_id)
        if limiter is None:
            limiter = self._by_realm[realm_id] = SharedRealmLimiter(
                realm_id, self.limits, self._ledger, self.terms, self._clock
            )
        return limiter
