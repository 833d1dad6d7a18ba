"""One failure taxonomy: every foreign error lands in one kind (wait and redo, refusal of
one record, bad input), and the pusher applies that one policy."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
)
from pydantic import ValidationError

from qbsync import retry
from qbsync.errors import BadInput, InvalidMessage, RecordRefused, Transient
from qbsync.quickbooks.errors import QuickBooksError, error_from_response
from qbsync.retry import is_bad_input, is_transient
from qbsync.sync.account_events import QueuedEvent
from schemas import SyncRequest
from services.pusher.app import Pusher
from tests.support.memory_uow import MemoryUnitOfWork
from tests.unit.test_use_cases import event


def quickbooks_error(status: int, code: str | None = None) -> QuickBooksError:
    body = {"Fault": {"Error": [{"Message": "m", "code": code}]}} if code else {}
    return error_from_response(realm_id="r", operation="update", status=status, body=body)


def validation_error() -> ValidationError:
    try:
        SyncRequest.model_validate_json(b"{}")
    except ValidationError as exc:
        return exc
    raise AssertionError("a sync request without fields validated")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionRefusedError(),
        TimeoutError(),
        KafkaConnectionError(),
        KafkaTimeoutError(),
        NotLeaderForPartitionError(),  # aiokafka calls it retriable
        quickbooks_error(503),
        quickbooks_error(429, "003001"),
    ],
)
def test_a_dependency_down_for_now_is_transient(error: Exception) -> None:
    assert is_transient(error) and not is_bad_input(error)


@pytest.mark.parametrize(
    "error",
    [quickbooks_error(400, "6240"), quickbooks_error(400, "6000"), quickbooks_error(400, "610")],
)
def test_quickbooks_refusing_a_record_is_a_refusal_not_a_transient_failure(
    error: Exception,
) -> None:
    assert isinstance(error, RecordRefused) and not is_transient(error)


def test_bad_input_is_neither_retried_nor_a_refusal() -> None:
    for error in (validation_error(), InvalidMessage("not a sync request")):
        assert is_bad_input(error) and not is_transient(error)
    assert issubclass(InvalidMessage, BadInput)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug"), CommitFailedError(), asyncpg.InterfaceError("something else")],
)
def test_anything_else_is_no_kind_of_ours(error: Exception) -> None:
    assert not is_transient(error) and not is_bad_input(error)
    assert not isinstance(error, Transient | RecordRefused)


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, topic: str, message: Any, error: Exception) -> None:
        self.sent.append((topic, str(error)))


def pusher_applying(outcomes: list[Exception | None]) -> tuple[Pusher, Letters, list[int]]:
    """A pusher whose applies meet `outcomes` in turn (None: applied)."""
    letters = Letters()
    runtime = SimpleNamespace(uow=MemoryUnitOfWork(), dead_letters=letters)
    pusher = Pusher(cast(Any, runtime))
    applied: list[int] = []

    async def run(firm_id: str, events: Any) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        applied.append(len(events))

    pusher.firm_batches = cast(Any, SimpleNamespace(run=run))
    return pusher, letters, applied


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []

    async def pause(event: asyncio.Event, seconds: float) -> bool:
        taken.append(seconds)
        return False

    monkeypatch.setattr(retry, "wait_for_event", pause)
    return taken


async def test_the_pusher_waits_out_quickbooks_unavailable_and_applies_the_events(
    pauses: list[float],
) -> None:
    """No attempt count of its own above the client's: a transient failure is one pause of
    the one backoff, then the same events again."""
    outcomes: list[Exception | None] = [quickbooks_error(503)] * 3 + [
        asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
        None,
    ]
    pusher, letters, applied = pusher_applying(outcomes)
    queued = [QueuedEvent(event("a1", "Alpha"), SimpleNamespace(offset=1))]
    await asyncio.wait_for(pusher.apply_events("firm:a1", queued), 1)
    assert applied == [1] and letters.sent == [] and len(pauses) == 4
    assert pauses == sorted(pauses)  # growing


async def test_the_pusher_dead_letters_events_failing_for_another_reason(
    pauses: list[float],
) -> None:
    pusher, letters, applied = pusher_applying([quickbooks_error(401), None])
    queued = [QueuedEvent(event("a1", "Alpha"), SimpleNamespace(offset=1))]
    await asyncio.wait_for(pusher.apply_events("firm:a1", queued), 1)
    assert applied == [] and pauses == []
    assert [topic for topic, _ in letters.sent] == ["liscio.account-events"]
    assert "HTTP 401" in letters.sent[0][1]
