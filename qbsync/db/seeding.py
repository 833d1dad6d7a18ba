"""Bulk loading of accounts, customers and links with COPY, for benchmarks that need a
firm of 100,000 records in seconds (the services store theirs with upserts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from qbsync.db.pool import Pool
from qbsync.domain.matching import fold

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


async def copy_accounts(pool: Pool, firm_id: str, accounts: Sequence[tuple[str, str]]) -> None:
    """(account_id, name) pairs, as Clients with no other field."""
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "accounts",
            columns=("firm_id", "account_id", "name", "name_folded", "status", "last_occurred_at"),
            records=[(firm_id, a, name, fold(name), "Client", _EPOCH) for a, name in accounts],
        )


async def copy_customers(pool: Pool, realm_id: str, customers: Sequence[tuple[str, str]]) -> None:
    """(customer_id, display_name) pairs, active top-level customers."""
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "customers",
            columns=("realm_id", "customer_id", "display_name", "name_folded", "sync_token"),
            records=[(realm_id, c, name, fold(name), "0") for c, name in customers],
        )


async def copy_links(
    pool: Pool, firm_id: str, realm_id: str, pairs: Sequence[tuple[str, str]]
) -> None:
    """(account_id, customer_id) pairs, linked automatically, first sync done."""
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "links",
            columns=("firm_id", "account_id", "realm_id", "customer_id", "how", "first_synced_at"),
            records=[(firm_id, a, realm_id, c, "auto", _EPOCH) for a, c in pairs],
        )
        await conn.execute("ANALYZE accounts; ANALYZE customers; ANALYZE links")
