"""The per-realm limiter: the sliding log (pure, explicit times) and the asyncio gate."""

from __future__ import annotations

import asyncio
import time

import pytest

from qbsync.config import Settings
from qbsync.quickbooks.limiter import (
    Grant,
    Limiters,
    Limits,
    RealmLimiter,
    SharedLimiters,
    SharingTerms,
    SlidingWindow,
    TakeRequest,
    bulk_work,
    finished_groups,
)
from tests.support.polling import eventually


def test_a_request_counts_from_start_until_a_window_after_its_answer() -> None:
    window = SlidingWindow(capacity=3, span=60.0)
    window.start(1)
    assert window.occupied(now=0.0) == 1
    window.finish(1, now=5.0)
    assert window.occupied(now=64.9) == 1  # still counted: answered at 5 s
    assert window.occupied(now=65.0) == 0


def test_room_is_capacity_minus_in_flight_and_recent() -> None:
    window = SlidingWindow(capacity=3, span=10.0)
    for at in (1.0, 2.0):
        window.start(1)
        window.finish(1, now=at)
    window.start(1)
    assert not window.has_room(1, now=3.0)
    assert window.room_at(1, now=3.0) == 11.0  # the oldest answer expires
    assert window.room_at(2, now=3.0) == 12.0  # both must expire
    assert window.room_at(3, now=3.0) is None  # the one in flight must finish first
    assert window.has_room(1, now=11.0)


def test_weights_count_in_full() -> None:
    window = SlidingWindow(capacity=40, span=10.0)
    window.start(30)
    assert window.has_room(10, now=0.0)
    assert not window.has_room(11, now=0.0)
    window.finish(30, now=1.0)
    assert window.room_at(11, now=2.0) == 11.0


def test_the_log_stays_ordered_if_the_clock_steps_back() -> None:
    window = SlidingWindow(capacity=2, span=10.0)
    window.start(1)
    window.start(1)
    window.finish(1, now=5.0)
    window.finish(1, now=4.0)
    assert window.occupied(now=14.9) == 2
    assert window.occupied(now=15.0) == 0


def test_limits_come_from_settings() -> None:
    settings = Settings(
        QBO_MAX_REQUESTS_PER_WINDOW=100, QBO_RATE_WINDOW_SECONDS=6, QBO_MAX_IN_FLIGHT=4
    )
    limits = Limits.from_settings(settings)
    assert (limits.max_per_window, limits.window_seconds, limits.max_in_flight) == (100, 6.0, 4)


def test_one_limiter_per_realm() -> None:
    limiters = Limiters(Limits())
    assert limiters.for_realm("a") is limiters.for_realm("a")
    assert limiters.for_realm("a") is not limiters.for_realm("b")


async def test_at_most_max_in_flight_hold_a_slot() -> None:
    limiter = RealmLimiter(Limits(max_in_flight=3))
    inside = 0
    most = 0
    release = asyncio.Event()

    async def request() -> None:
        nonlocal inside, most
        async with limiter.slot():
            inside += 1
            most = max(most, inside)
            if inside == 3:
                release.set()
            await release.wait()
            inside -= 1

    await asyncio.gather(*(request() for _ in range(12)))
    assert most == 3
    assert limiter.in_flight == 0


async def test_a_full_window_waits_until_the_oldest_answer_is_a_window_old() -> None:
    window = 0.3
    limiter = RealmLimiter(Limits(max_per_window=3, window_seconds=window, max_in_flight=10))
    answered: list[float] = []
    for _ in range(3):
        async with limiter.slot():
            answered.append(time.monotonic())  # the limiter notes the answer just after this
    assert limiter.occupied() == 3

    async with limiter.slot() as waited:
        entered = time.monotonic()

    assert entered >= answered[0] + window
    assert waited > 0


async def test_a_window_full_of_requests_in_flight_waits_for_answers() -> None:
    limiter = RealmLimiter(Limits(max_per_window=2, window_seconds=0.05, max_in_flight=10))
    finish = asyncio.Event()
    both_in = asyncio.Event()
    admitted: list[str] = []

    async def hold(name: str) -> None:
        async with limiter.slot():
            admitted.append(name)
            if len(admitted) == 2:
                both_in.set()
            await finish.wait()

    holders = [asyncio.create_task(hold(n)) for n in ("a", "b")]
    third = asyncio.create_task(hold("c"))
    await asyncio.wait_for(both_in.wait(), timeout=5)
    # Twice the window later there is still no room: both requests are still in flight.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(third), timeout=0.1)
    assert admitted == ["a", "b"]
    finish.set()
    await asyncio.wait_for(asyncio.gather(*holders, third), timeout=5)
    assert admitted == ["a", "b", "c"]


async def test_waiters_are_admitted_in_arrival_order_so_a_batch_is_not_starved() -> None:
    limiter = RealmLimiter(Limits(max_per_window=5, window_seconds=0.1, max_in_flight=10))
    order: list[str] = []

    async def request(name: str, weight: int) -> None:
        async with limiter.slot(weight, batch=weight > 1):
            order.append(name)

    for n in range(4):
        await request(f"s{n}", 1)
    tasks = [asyncio.create_task(request("batch", 5))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(request(f"late{n}", 1)) for n in range(3)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert order[4] == "batch"


async def test_batches_have_their_own_window() -> None:
    limiter = RealmLimiter(Limits(max_per_window=100, window_seconds=0.2, max_batches_per_window=2))
    for _ in range(2):
        async with limiter.slot(2, batch=True):
            pass
    began = time.monotonic()
    async with limiter.slot(2, batch=True):
        pass
    assert time.monotonic() - began >= 0.15
    async with limiter.slot(1) as waited:  # plain requests are not held back by the batch cap
        assert waited < 0.1


async def test_a_weight_over_the_window_is_refused() -> None:
    limiter = RealmLimiter(Limits(max_per_window=10))
    with pytest.raises(ValueError, match=r"1\.\.10"):
        async with limiter.slot(11):
            pass
    async with limiter.slot(10):
        pass  # a refused request did not leak an in-flight slot
    assert limiter.in_flight == 0


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    limiter = RealmLimiter(Limits(max_per_window=1, window_seconds=0.2, max_in_flight=1))
    async with limiter.slot():
        pass

    async def request() -> None:
        async with limiter.slot():
            pass

    # The waiter takes the only in-flight place, then waits for the window; cancel it there.
    waiter = asyncio.create_task(request())
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Had the cancelled waiter kept its in-flight place, this would never get in.
    await asyncio.wait_for(request(), timeout=2)
    assert limiter.in_flight == 0


class StingyLedger:
    """A ledger that grants at most `per_take` calls a take, and records the takes."""

    def __init__(self, per_take: int) -> None:
        self.per_take = per_take
        self.requests: list[TakeRequest] = []
        self.open = asyncio.Event()
        self.open.set()

    async def take(self, request: TakeRequest) -> Grant:
        await self.open.wait()
        self.requests.append(request)
        return Grant(calls=min(request.want_calls, self.per_take), slots=10, retry_in=None)


async def test_the_shared_limiter_serves_interactive_waiters_before_bulk_ones() -> None:
    ledger = StingyLedger(per_take=1)
    ledger.open.clear()  # everybody queues up before the first grant
    limiter = SharedLimiters(Limits(), ledger, SharingTerms(0.01, 1, 5.0)).for_realm("r")
    order: list[str] = []

    async def call(name: str) -> None:
        async with limiter.slot():
            order.append(name)

    async def bulk_call(name: str) -> None:
        with bulk_work():
            await call(name)

    tasks = [asyncio.create_task(bulk_call(f"bulk-{n}")) for n in range(3)]
    await asyncio.sleep(0.01)
    tasks += [asyncio.create_task(call(f"live-{n}")) for n in range(2)]
    await asyncio.sleep(0.01)
    ledger.open.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)

    assert order == ["live-0", "live-1", "bulk-0", "bulk-1", "bulk-2"]
    # It asked for everything that waited, and said how urgent the most urgent was (the
    # first take left while only the bulk calls waited).
    asked = [(r.want_calls, r.priority) for r in ledger.requests]
    assert asked[:4] == [(3, 1), (4, 0), (3, 1), (2, 1)]
    await limiter.aclose()
    assert ledger.requests[-1].want_calls == 0  # closing gave everything back
    assert ledger.requests[-1].in_flight_calls == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_its_grant_to_the_next() -> None:
    ledger = StingyLedger(per_take=1)
    ledger.open.clear()
    limiter = SharedLimiters(Limits(), ledger, SharingTerms(0.01, 1, 5.0)).for_realm("r")
    done: list[str] = []

    async def call(name: str) -> None:
        async with limiter.slot():
            done.append(name)

    first = asyncio.create_task(call("cancelled"))
    second = asyncio.create_task(call("served"))
    await asyncio.sleep(0.01)
    first.cancel()
    ledger.open.set()
    await asyncio.wait_for(second, 5)

    assert done == ["served"]
    assert limiter.in_flight == 0
    await limiter.aclose()


def test_finished_calls_are_reported_in_groups_counted_from_their_last_finish() -> None:
    finishes = [(10.00, 1), (10.01, 2), (10.04, 1), (10.30, 5)]
    groups = finished_groups(finishes, now=10.45, width=0.1)
    assert [(calls, round(ago, 3)) for calls, ago in sorted(groups, key=lambda g: -g[1])] == [
        (4, 0.41),  # finished 10.00-10.04, in one group: counted from 10.04
        (5, 0.15),
    ]


class SlotLedger:
    """A ledger with room for everything that grants `slots` in-flight slots (None: every
    slot asked for) and at most the chunk asked for, and records the takes; the take
    numbered `held_take` (from 1) answers only once `release_take` is set."""

    def __init__(self, slots: int | None, held_take: int | None = None) -> None:
        self.slots = slots
        self.held_take = held_take
        self.release_take = asyncio.Event()
        self.requests: list[TakeRequest] = []

    async def take(self, request: TakeRequest) -> Grant:
        self.requests.append(request)
        if len(self.requests) == self.held_take:
            await self.release_take.wait()
        calls = min(request.want_calls, request.chunk)
        slots = request.want_slots if self.slots is None or not request.want_slots else self.slots
        return Grant(calls=calls, slots=slots, retry_in=None)


async def test_a_grant_is_no_more_than_the_processs_slots_can_send_at_once() -> None:
    """A granted call counts for every process from the grant, QuickBooks counts it from
    its arrival: calls granted to wait for a slot of ours would be quota nobody uses."""
    ledger = SlotLedger(slots=2)
    limiter = SharedLimiters(Limits(), ledger, SharingTerms(0.01, 20, 5.0)).for_realm("r")
    release = asyncio.Event()
    started = 0

    async def call() -> None:
        nonlocal started
        async with limiter.slot():
            started += 1
            await release.wait()

    tasks = [asyncio.create_task(call()) for _ in range(10)]

    async def two_in_flight() -> bool:
        return started == 2

    await eventually(two_in_flight, timeout=5, interval=0.01, what="two calls in flight")
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    await limiter.aclose()

    assert started == 10
    # The first take knew of no slot (one call); every later one asked for at most one round
    # of its two slots, never the 20 calls a grant may be.
    chunks = [r.chunk for r in ledger.requests if r.want_calls]
    assert chunks[0] == 1 and max(chunks) == 2


async def test_a_process_with_every_slot_there_is_busy_takes_its_next_round_at_once() -> None:
    # make bench-sync: a first sync's writes went one round of slots per lease (1 s): a
    # grant of all it asked for, started at once on every slot there is, left waiters
    # short of calls, and the next take waited a lease as if the window were full.
    ledger = SlotLedger(slots=2, held_take=2)
    lease = 30.0
    limits = Limits(max_in_flight=2)
    limiter = SharedLimiters(limits, ledger, SharingTerms(lease, 20, 60.0)).for_realm("r")
    release = asyncio.Event()
    done = 0

    async def call() -> None:
        nonlocal done
        async with limiter.slot():
            await release.wait()
            done += 1

    tasks = [asyncio.create_task(call()) for _ in range(6)]

    async def second_take_asked() -> bool:
        return len(ledger.requests) == 2

    await eventually(second_take_asked, timeout=5, interval=0.01, what="the second take")
    release.set()  # the first call ends while the take is under way

    async def first_done() -> bool:
        return done == 1

    await eventually(first_done, timeout=5, interval=0.01, what="the first call")
    ledger.release_take.set()  # a grant of two calls, for both slots, with three left waiting

    await asyncio.wait_for(asyncio.gather(*tasks), lease / 3)
    await limiter.aclose()
    assert done == 6


async def test_slots_wanted_by_waiters_that_came_during_a_take_are_asked_for_at_once() -> None:
    ledger = SlotLedger(slots=None, held_take=1)
    lease = 30.0
    limiter = SharedLimiters(Limits(), ledger, SharingTerms(lease, 20, 60.0)).for_realm("r")
    release = asyncio.Event()
    started = 0

    async def call() -> None:
        nonlocal started
        async with limiter.slot():
            started += 1
            await release.wait()

    first = asyncio.create_task(call())

    async def asking() -> bool:
        return len(ledger.requests) == 1

    await eventually(asking, timeout=5, interval=0.01, what="the first take")
    later = [asyncio.create_task(call()) for _ in range(9)]
    await asyncio.sleep(0)  # each new task's first step queues it behind the take
    ledger.release_take.set()  # the grant: the one slot asked for before they came

    async def all_started() -> bool:
        return started == 10

    await eventually(all_started, timeout=lease / 10, interval=0.01, what="ten calls in flight")
    release.set()
    await asyncio.gather(first, *later)
    await limiter.aclose()
