"""The asyncpg pool, reached with bounded retries."""

from __future__ import annotations

import json
from typing import Any, Union

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from qbsync.retry import with_backoff

Pool = asyncpg.Pool


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns come back as Python values, and go in as them.
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


async def connect_pool(dsn: str, attempts: int = 10, max_size: int = 10) -> Pool:
    async def attempt() -> Pool:
        return await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, init=_init_connection, command_timeout=60
        )

    return await with_backoff("PostgreSQL", attempt, attempts)


# What repository functions accept: a connection (plain or from the pool) or the pool.
Connection = Union["asyncpg.Connection[Any]", "PoolConnectionProxy[Any]"]
Db = Union["asyncpg.Connection[Any]", "PoolConnectionProxy[Any]", "asyncpg.Pool[Any]"]
