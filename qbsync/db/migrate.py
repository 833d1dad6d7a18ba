"""Versioned SQL migrations (qbsync/db/migrations/NNNN_name.sql), applied once each.

Safe when several processes start at once: a transaction-level advisory lock lets one
apply while the others wait, then find nothing left to do.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger("qbsync.db")

_LOCK_KEY = 0x5153594E43  # "QSYNC": any constant shared by every qbsync process


def available_migrations() -> list[tuple[str, str]]:
    folder = resources.files("qbsync.db").joinpath("migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text()) for name in names]


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    applied: list[str] = []
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"] for r in await connection.fetch("SELECT version FROM schema_migrations")
        }
        for version, sql in available_migrations():
            if version in done:
                continue
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
            log.info("applied migration %s", version)
    return applied


async def pending_migrations(pool: asyncpg.Pool) -> list[str]:
    """The versions not applied yet (readiness: none)."""
    applied = {
        r["version"]
        for r in await pool.fetch(
            "SELECT version FROM schema_migrations"
            " WHERE to_regclass('schema_migrations') IS NOT NULL"
        )
    }
    return [version for version, _ in available_migrations() if version not in applied]
