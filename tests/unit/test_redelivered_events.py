"""A redelivered event never throws away the waiting state it duplicates, and a late
redelivery of an older event never displaces the newer one waiting ahead of it (issue 11,
defect 2): the pusher's queue (`absorb` in a KeyedDispatcher) and the in-batch fold
(`superseded`) keep the newest state and never mark the event they apply as redundant."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from qbsync.dispatch import KeyedDispatcher
from qbsync.sync.account_events import QueuedEvent, absorb, superseded
from schemas import AccountEvent
from tests.support.polling import eventually

T0 = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


def update(n: int, *, type_: str = "account.updated") -> AccountEvent:
    """Event `e{n}`, the account's n-th state (its phone says which)."""
    return AccountEvent.model_validate(
        {
            "event_id": f"e{n}",
            "type": type_,
            "occurred_at": T0 + timedelta(seconds=n),
            "firm_id": "firm-1",
            "account": {"id": "acct-1", "name": "Acme", "phone": f"555-{n:04d}"},
        }
    )


class Recorder:
    """A handler that holds its first call until released, and records every item."""

    def __init__(self) -> None:
        self.calls: list[list[QueuedEvent]] = []
        self.release = asyncio.Event()
        self.first_in_hand = asyncio.Event()

    async def __call__(self, key: str, items: list[QueuedEvent]) -> None:
        self.calls.append(items)
        if len(self.calls) == 1:
            self.first_in_hand.set()
            await self.release.wait()


async def noop() -> None:
    return None


async def submit_behind_one_in_hand(
    dispatcher: KeyedDispatcher[QueuedEvent], recorder: Recorder, events: list[QueuedEvent]
) -> None:
    """The first event is being handled while the others arrive, then all are handled."""
    await dispatcher.submit("k", events[0], noop)
    await asyncio.wait_for(recorder.first_in_hand.wait(), 5)
    for queued in events[1:]:
        await dispatcher.submit("k", queued, noop)
    recorder.release.set()

    async def idle() -> bool:
        return not dispatcher._workers

    await eventually(idle, timeout=5, interval=0.001, what="dispatcher idle")
    await dispatcher.stop(grace=5.0)


async def test_a_redelivery_of_the_waiting_event_keeps_it_and_marks_nothing() -> None:
    recorder = Recorder()
    dispatcher: KeyedDispatcher[QueuedEvent] = KeyedDispatcher(recorder, absorb=absorb)
    await submit_behind_one_in_hand(
        dispatcher,
        recorder,
        [
            QueuedEvent(update(1), "m1"),  # being handled
            QueuedEvent(update(2), "m2"),  # waits
            QueuedEvent(update(2), "m2-again"),  # its redelivery
        ],
    )

    waited = recorder.calls[1]
    assert [(q.event.event_id, q.absorbed) for q in waited] == [("e2", ())]


async def test_a_late_redelivery_of_an_older_event_never_displaces_the_newer() -> None:
    recorder = Recorder()
    dispatcher: KeyedDispatcher[QueuedEvent] = KeyedDispatcher(recorder, absorb=absorb)
    await submit_behind_one_in_hand(
        dispatcher,
        recorder,
        [
            QueuedEvent(update(1), "m1"),
            QueuedEvent(update(2), "m2"),
            QueuedEvent(update(3), "m3"),
            QueuedEvent(update(2), "m2-again"),
        ],
    )

    waited = recorder.calls[1]
    assert [(q.event.event_id, q.absorbed, q.message) for q in waited] == [("e3", ("e2",), "m3")]


def test_the_in_batch_fold_never_marks_the_event_it_applies() -> None:
    events = [update(1), update(2), update(2), update(1), update(3), update(3)]
    assert [(e.event_id, ids) for e, ids in superseded(events)] == [("e3", ["e1", "e2"])]


async def test_random_redeliveries_while_updates_wait_end_in_the_last_state() -> None:
    """Many accounts' updates, redelivered at random (the same event again, soon or late),
    while the first of each waits: what is applied last is the newest state, which is never
    marked redundant, and no item marks its own event redundant."""
    rng = random.Random(20261203)
    for _ in range(50):
        recorder = Recorder()
        dispatcher: KeyedDispatcher[QueuedEvent] = KeyedDispatcher(recorder, absorb=absorb)
        newest = rng.randint(2, 12)
        delivered = list(range(1, newest + 1))
        for _ in range(rng.randint(1, 8)):  # redeliveries of events already delivered
            at = rng.randint(1, len(delivered))
            delivered.insert(at, rng.choice(delivered[:at]))
        await submit_behind_one_in_hand(
            dispatcher, recorder, [QueuedEvent(update(n), f"m{n}") for n in delivered]
        )

        applied = [q for call in recorder.calls for q in call]
        marked = {i for q in applied for i in q.absorbed}
        assert max(q.event.occurred_at for q in applied) == update(newest).occurred_at
        assert applied[-1].event.account.phone == f"555-{newest:04d}", delivered
        assert f"e{newest}" not in marked, delivered
        assert all(q.event.event_id not in q.absorbed for q in applied), delivered
