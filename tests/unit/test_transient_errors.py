"""Which errors say "try again later" (the work waits) rather than "this message is bad"
(the message goes to the dead-letter topic)."""

from __future__ import annotations

import asyncpg
import pytest

from qbsync.retry import is_transient


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("connect call failed"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        # What asyncpg raises when the connection under a transaction was terminated:
        asyncpg.InterfaceError(
            "cannot call Transaction.__aexit__(): the underlying connection is closed"
        ),
        asyncpg.InterfaceError(
            "cannot call Connection.fetchval(): connection has been released back to the pool"
        ),
        asyncpg.InterfaceError("pool is closing"),
    ],
    ids=repr,
)
def test_a_dependency_that_is_down_for_now_is_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad value"),
        asyncpg.exceptions.UniqueViolationError("duplicate key value"),
        asyncpg.exceptions.DataError("invalid input syntax"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    ],
    ids=repr,
)
def test_an_error_of_the_work_itself_is_not(error: BaseException) -> None:
    assert not is_transient(error)
