"""Work that must go on when a dependency goes away: the pauses between attempts, the
importer's loops, and the importer's consumer, which waits for PostgreSQL instead of
dead-lettering a good message, and dead-letters (instead of dying on) a message that fails
for any other reason."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from qbsync import metrics, retry
from qbsync.crypto import TokenDecryptionError
from qbsync.kafka.consumer import ConsumerLoop
from qbsync.retry import Backoff
from services.importer import app as importer_app
from tests.support.memory_uow import MemoryUnitOfWork

DROPPED = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")


@pytest.fixture(autouse=True)
def no_real_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    pauses: list[float] = []

    async def pause(event: asyncio.Event, seconds: float) -> bool:
        pauses.append(seconds)
        await asyncio.sleep(0)
        return event.is_set()

    monkeypatch.setattr(retry, "wait_for_event", pause)
    return pauses


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(first=0.5, cap=3.0, draw=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_pauses_are_jittered_between_half_their_ceiling_and_it() -> None:
    """Services that met one outage must not all try again at the same instant."""
    assert Backoff(first=4.0, draw=lambda: 0.0).next_delay() == 2.0
    pauses = {Backoff(first=4.0).next_delay() for _ in range(50)}
    assert all(2.0 <= p <= 4.0 for p in pauses) and len(pauses) > 40


def within(pauses: list[float], ceilings: list[float]) -> bool:
    """Each pause a jittered one of its ceiling (see the test above)."""
    return len(pauses) == len(ceilings) and all(
        c / 2 <= p <= c for p, c in zip(pauses, ceilings, strict=True)
    )


async def test_the_import_loop_outlives_a_dropped_connection(
    monkeypatch: pytest.MonkeyPatch, no_real_pauses: list[float]
) -> None:
    stopping = asyncio.Event()
    outcomes: list[Exception | None] = [DROPPED, RuntimeError("a bug"), None]

    async def claim_next(step: str) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        stopping.set()  # the third round got through: enough

    async def idle(event: asyncio.Event, seconds: float) -> bool:
        return stopping.is_set()

    uow = MemoryUnitOfWork()
    monkeypatch.setattr(uow.direct.runs, "claim_next", claim_next)
    monkeypatch.setattr(importer_app, "wait_for_event", idle)  # no run to import: idle
    importer = importer_app.Importer(cast(Any, SimpleNamespace(uow=uow)))
    await asyncio.wait_for(importer.import_runs(stopping), 1)
    assert outcomes == [] and within(no_real_pauses, [0.2, 0.4])


async def test_the_change_poller_outlives_a_dropped_connection(
    no_real_pauses: list[float],
) -> None:
    stopping = asyncio.Event()
    rounds = 0

    async def connected_realms() -> list[tuple[str, str]]:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise DROPPED
        stopping.set()
        return []

    uow = MemoryUnitOfWork()
    setattr(uow.direct.connections, "connected_realms", connected_realms)  # noqa: B010
    runtime = SimpleNamespace(uow=uow, settings=SimpleNamespace(QBSYNC_CDC_INTERVAL_SECONDS=0.0))
    importer = importer_app.Importer(cast(Any, runtime))
    await asyncio.wait_for(importer.poll_changes(stopping), 1)
    assert rounds == 2 and within(no_real_pauses, [0.2])


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str]] = []

    async def send(self, topic: str, message: Any, error: Exception) -> None:
        self.sent.append((topic, message.offset, str(error)))


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="p.sync.requests",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"firm-1",
        value=b"{}",
        checksum=None,
        serialized_key_size=6,
        serialized_value_size=2,
        headers=(),
    )


def consumer_loop(handler: Any, letters: Letters) -> ConsumerLoop:
    return ConsumerLoop(
        "127.0.0.1:1", "p.", "importer", {"sync.requests": handler}, cast(Any, letters)
    )


async def test_a_message_that_meets_the_database_down_waits_and_is_not_dead_lettered() -> None:
    failures = [DROPPED, DROPPED]
    handled: list[int] = []

    async def handler(message: ConsumerRecord[bytes, bytes]) -> None:
        if failures:
            raise failures.pop(0)
        handled.append(message.offset)

    letters = Letters()
    assert await consumer_loop(handler, letters)._handle(record(7)) is True
    assert handled == [7] and letters.sent == []


async def test_a_message_failing_for_another_reason_is_dead_lettered_with_it() -> None:
    async def handler(message: ConsumerRecord[bytes, bytes]) -> None:
        raise KeyError("firm_id")

    letters = Letters()
    assert await consumer_loop(handler, letters)._handle(record(8)) is True
    assert letters.sent == [("sync.requests", 8, "'firm_id'")]


async def test_a_consumer_stopped_while_a_message_waits_leaves_it_for_later() -> None:
    async def handler(message: ConsumerRecord[bytes, bytes]) -> None:
        raise DROPPED

    letters = Letters()
    loop = consumer_loop(handler, letters)
    await loop.stop()
    assert await loop._handle(record(9)) is False
    assert letters.sent == []


async def test_one_realms_failure_stays_that_realms_and_the_others_are_polled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11, defect 4: a token that cannot be decrypted (or any other failure of one
    realm) is logged and counted, and the round goes on with the other realms; only a
    dependency being down ends the round, for the loop to wait out."""
    polled: list[str] = []
    failures: dict[str, Exception] = {"r-bad": TokenDecryptionError("stored token cannot be")}

    uow = MemoryUnitOfWork()
    for realm_id in ("r-1", "r-bad", "r-2"):
        uow.connect(f"f-{realm_id}", realm_id)

    async def poll_realm(uow: Any, producer: Any, qb: Any, firm_id: str, realm_id: str) -> int:
        if realm_id in failures:
            raise failures[realm_id]
        polled.append(realm_id)
        return 0

    monkeypatch.setattr(importer_app, "poll_realm", poll_realm)
    runtime = SimpleNamespace(uow=uow, producer=None, quickbooks=None)
    importer = importer_app.Importer(cast(Any, runtime))
    counted = metrics.CDC_POLLS_FAILED.labels("TokenDecryptionError")
    before = counted._value.get()

    await importer.poll_connected_realms()

    assert polled == ["r-1", "r-2"]
    assert counted._value.get() == before + 1
    failures["r-bad"] = DROPPED
    polled.clear()
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await importer.poll_connected_realms()
    assert polled == ["r-1"]
