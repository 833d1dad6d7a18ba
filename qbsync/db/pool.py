"""The asyncpg pool, reached with bounded retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Union

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from qbsync.retry import with_backoff

Pool = asyncpg.Pool


# jsonb's binary form: a version byte, then the JSON text.
_JSONB_VERSION = b"\x01"


class EncodedJson(str):
    """JSON text written to a jsonb column as it is (`None` would be SQL NULL; this
    can be the JSON `null`)."""


def _encode_jsonb(value: Any) -> bytes:
    text = value if isinstance(value, EncodedJson) else json.dumps(value)
    return _JSONB_VERSION + text.encode()


def _decode_jsonb(data: bytes) -> Any:
    # orjson: a few µs less per value (every address of a pair loaded for a sync); it
    # refuses integers beyond 64 bits, which PostgreSQL's jsonb may hold: json reads those.
    try:
        return orjson.loads(data[1:])
    except orjson.JSONDecodeError:
        return json.loads(data[1:])


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns come back as Python values, and go in as them. In binary form, so that
    # rows with jsonb columns can be written with COPY (`copy_records_to_table`).
    await connection.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, beyond rolling back a transaction left
    open (asyncpg does that first): nothing. asyncpg's default, a query undoing session
    state, is a second round trip for every use of the pool (≈40-90 µs of CPU here, as much
    as the statement itself), and our code keeps no session state: its advisory locks are
    the transaction's, it sets nothing for the session and listens to nothing
    (tests/unit/test_session_state.py holds it to that)."""


async def connect_pool(
    dsn: str, attempts: int = 10, max_size: int = 10, application_name: str | None = None
) -> Pool:
    """`application_name`: what PostgreSQL shows for these connections (pg_stat_activity)."""
    settings = {"application_name": application_name} if application_name else None

    async def attempt() -> Pool:
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            command_timeout=60,
            server_settings=settings,
        )

    return await with_backoff("PostgreSQL", attempt, attempts)


# What repository functions accept: a connection (plain or from the pool) or the pool.
Connection = Union["asyncpg.Connection[Any]", "PoolConnectionProxy[Any]"]
Db = Union["asyncpg.Connection[Any]", "PoolConnectionProxy[Any]", "asyncpg.Pool[Any]"]


@asynccontextmanager
async def transaction_on(db: Db) -> AsyncIterator[Connection]:
    """A transaction: of its own on a pool connection, or within the caller's on a
    connection (a savepoint there), so a repository works both ways."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db
