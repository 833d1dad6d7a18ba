"""`qbsync sync --wait` waits out PostgreSQL restarting (issue 11, defect 5): the errors a
restart gives a client (refused, shutting down, connection lost) are one line on stderr
each outage, and the wait goes on to the run's report; any other error still raises."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest

from qbsync.cli import sync as sync_cli
from schemas import SyncRequest

REQUEST = SyncRequest(
    request_id=str(uuid.uuid4()), firm_id="f-1", kind="sync", requested_at=datetime.now(UTC)
)
RESTARTING = [
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    ConnectionRefusedError(111, "Connect call failed"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
]


async def test_a_restart_during_the_wait_is_waited_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers: list[Exception | dict[str, Any]] = [
        {"status": "running"},
        *RESTARTING,
        {"status": "running"},
        {"status": "done"},
    ]

    async def report_of_request(pool: Any, request: SyncRequest) -> dict[str, Any] | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(sync_cli, "_report_of_request", report_of_request)
    monkeypatch.setattr(sync_cli.asyncio, "sleep", _no_sleep)

    report = await sync_cli.wait_for_run(cast(Any, None), REQUEST, until_finished=True, timeout=10)

    assert report == {"status": "done"}
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("database unavailable") and "back" in err[1]


async def test_any_other_error_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    async def report_of_request(pool: Any, request: SyncRequest) -> dict[str, Any] | None:
        raise KeyError("run_id")

    monkeypatch.setattr(sync_cli, "_report_of_request", report_of_request)
    with pytest.raises(KeyError):
        await sync_cli.wait_for_run(cast(Any, None), REQUEST, until_finished=True, timeout=10)


async def _no_sleep(seconds: float) -> None:
    return None
