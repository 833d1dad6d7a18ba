"""The pool on the real PostgreSQL: a connection given back is not reset (one round trip
less per use; tests/unit/test_session_state.py keeps our SQL free of session state), but a
transaction left open on it never reaches the next user."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from qbsync.db.pool import Pool, connect_pool
from tests.conftest import unique


@pytest_asyncio.fixture
async def one_connection(database_url: str) -> AsyncIterator[Pool]:
    pool = await connect_pool(database_url, attempts=3, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_connection_given_back_is_not_reset(one_connection: Pool) -> None:
    marker = unique("session")
    async with one_connection.acquire() as conn:
        await conn.execute(f"SET application_name = '{marker}'")
        backend = await conn.fetchval("SELECT pg_backend_pid()")
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == backend
        # asyncpg's default reset ends in RESET ALL, which would have undone this.
        assert await conn.fetchval("SHOW application_name") == marker


async def test_a_transaction_left_open_is_rolled_back_before_the_next_use(
    one_connection: Pool,
) -> None:
    table = unique("left_open").replace("-", "_")
    async with one_connection.acquire() as conn:
        await conn.execute(f"CREATE TABLE {table} (id int)")
    try:
        async with one_connection.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute(f"INSERT INTO {table} VALUES (1)")
        async with one_connection.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        async with one_connection.acquire() as conn:
            await conn.execute(f"DROP TABLE {table}")
