"""Rotating OAuth tokens stored encrypted in PostgreSQL (real database, scripted OAuth server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.errors import NeedsReconnectError
from qbsync.quickbooks.postgres_tokens import PostgresTokenStore
from qbsync.quickbooks.tokens import StoredTokens
from tests.conftest import unique
from tests.support.fake_quickbooks import (
    BASE_URL,
    TOKEN_URL,
    Answer,
    FakeQuickBooks,
    SeenRequest,
    customer,
)
from tests.support.keys import TEST_SECRET_KEY

CIPHER = TokenCipher(TEST_SECRET_KEY)


async def connected_realm(pool: Pool, refresh_token: str = "rt-0") -> str:
    realm = unique("realm")
    await store_connection(pool, CIPHER, unique("firm"), realm, refresh_token)
    return realm


def client_for(fake: FakeQuickBooks, store: PostgresTokenStore) -> QuickBooksClient:
    return QuickBooksClient(
        base_url=BASE_URL,
        token_url=TOKEN_URL,
        client_id="app",
        client_secret="secret",
        tokens=store,
        retry=RetryPolicy(attempts=2, base_delay=0),
        connector=fake.connector,
    )


async def test_a_rotated_refresh_token_is_stored_encrypted(pool: Pool) -> None:
    realm = await connected_realm(pool)
    fake = FakeQuickBooks()
    fake.script(Answer(200, json={"Customer": customer("1")}))
    async with client_for(fake, PostgresTokenStore(pool, CIPHER)) as client:
        await client.read_customer(realm, "1")

    row = await pool.fetchrow(
        "SELECT refresh_token_enc, access_token_enc, access_token_expires_at "
        "FROM connections WHERE realm_id = $1",
        realm,
    )
    assert row is not None
    assert b"rt-1" not in bytes(row["refresh_token_enc"])
    assert CIPHER.decrypt(bytes(row["refresh_token_enc"])) == "rt-1"
    assert CIPHER.decrypt(bytes(row["access_token_enc"])) == "at-1"
    assert row["access_token_expires_at"] is not None
    assert fake.refresh_tokens == {"rt-1"}


async def test_refreshes_from_many_processes_collapse_into_one(pool: Pool) -> None:
    realm = await connected_realm(pool)
    fake = FakeQuickBooks(token_delay=0.1)

    async def answer(request: SeenRequest) -> Answer:
        return Answer(200, json={"Customer": customer("1")})

    fake.api = answer
    # Three clients with their own stores and locks stand for three processes.
    clients = [client_for(fake, PostgresTokenStore(pool, CIPHER)) for _ in range(3)]
    try:
        await asyncio.gather(
            *(client.read_customer(realm, "1") for client in clients for _ in range(10))
        )
    finally:
        for client in clients:
            await client.aclose()

    assert fake.token_requests == 1  # a second refresh would also have hit invalid_grant
    assert {r.headers["Authorization"] for r in fake.api_requests} == {"Bearer at-1"}


async def test_a_refresh_holds_the_row_and_a_failed_one_leaves_it_untouched(pool: Pool) -> None:
    realm = await connected_realm(pool)
    store = PostgresTokenStore(pool, CIPHER)

    async def failing_refresh(current: StoredTokens) -> StoredTokens:
        assert current.refresh_token == "rt-0"
        # Any other refresher (another process) must queue on the row meanwhile.
        with pytest.raises(asyncpg.LockNotAvailableError):
            await pool.fetchval(
                "SELECT 1 FROM connections WHERE realm_id = $1 FOR UPDATE NOWAIT", realm
            )
        raise RuntimeError("token endpoint went away mid-refresh")

    with pytest.raises(RuntimeError):
        await store.rotate(realm, failing_refresh)
    assert (await store.load(realm)).refresh_token == "rt-0"


async def test_invalid_grant_marks_the_connection_needs_reconnect(pool: Pool) -> None:
    realm = await connected_realm(pool, refresh_token="rt-revoked")
    fake = FakeQuickBooks()
    async with client_for(fake, PostgresTokenStore(pool, CIPHER)) as client:
        with pytest.raises(NeedsReconnectError):
            await client.read_customer(realm, "1")
        with pytest.raises(NeedsReconnectError):  # from the stored status, no new token request
            await client.read_customer(realm, "1")

    row = await pool.fetchrow(
        "SELECT status, status_reason FROM connections WHERE realm_id = $1", realm
    )
    assert row is not None and row["status"] == "needs_reconnect"
    assert "invalid_grant" in row["status_reason"]
    assert fake.token_requests == 1


async def test_a_token_no_key_of_ours_opens_marks_only_its_realm(pool: Pool) -> None:
    """Issue 11, defect 4: a stored token written under another QBSYNC_SECRET_KEY is a dead
    connection (it needs reconnecting, with the reason), not an error that escapes as
    something else; other realms' tokens still load."""
    unreadable = await connected_realm(pool)
    await pool.execute(
        "UPDATE connections SET refresh_token_enc = $2 WHERE realm_id = $1",
        unreadable,
        TokenCipher(new_secret_key()).encrypt("rt-0"),
    )
    healthy = await connected_realm(pool)
    store = PostgresTokenStore(pool, CIPHER)

    with pytest.raises(NeedsReconnectError, match="cannot be decrypted"):
        await store.load(unreadable)

    row = await pool.fetchrow(
        "SELECT status, status_reason FROM connections WHERE realm_id = $1", unreadable
    )
    assert row["status"] == "needs_reconnect"
    assert "cannot be decrypted" in row["status_reason"]
    assert (await store.load(healthy)).refresh_token == "rt-0"


async def test_a_refresh_of_a_token_no_key_of_ours_opens_marks_it_too(pool: Pool) -> None:
    realm = await connected_realm(pool)
    await pool.execute(
        "UPDATE connections SET refresh_token_enc = $2 WHERE realm_id = $1",
        realm,
        TokenCipher(new_secret_key()).encrypt("rt-0"),
    )
    store = PostgresTokenStore(pool, CIPHER)

    async def renew(current: StoredTokens) -> StoredTokens:
        raise AssertionError("never called: the stored token cannot be read")

    with pytest.raises(NeedsReconnectError):
        await asyncio.wait_for(store.rotate(realm, renew), 10)
    status = await pool.fetchval("SELECT status FROM connections WHERE realm_id = $1", realm)
    assert status == "needs_reconnect"


async def test_tokens_a_refresh_returned_outlive_the_database_dropping_the_refresh(
    pool: Pool,
) -> None:
    """QuickBooks answered, then the database ended the transaction that held the row and
    was to store the answer (a restart, a failover): the new tokens are stored all the same
    once the database answers again, instead of being dropped while a strict issuer has
    already made the stored refresh token useless."""
    realm = await connected_realm(pool)
    store = PostgresTokenStore(pool, CIPHER)

    async def refresh_then_lose_the_connection(current: StoredTokens) -> StoredTokens:
        assert current.refresh_token == "rt-0"
        terminated = await pool.fetchval(
            """
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND state = 'idle in transaction' AND query LIKE '%FOR UPDATE%'
            """
        )
        assert terminated == 1
        return StoredTokens("rt-1", "at-1", datetime.now(UTC) + timedelta(minutes=50))

    renewed = await store.rotate(realm, refresh_then_lose_the_connection)

    assert renewed.refresh_token == "rt-1"
    assert (await store.load(realm)).refresh_token == "rt-1"


async def test_a_rescued_save_never_overwrites_tokens_stored_meanwhile(pool: Pool) -> None:
    realm = await connected_realm(pool)
    store = PostgresTokenStore(pool, CIPHER)

    async def lose_the_connection_after_another_process_stored(
        current: StoredTokens,
    ) -> StoredTokens:
        await pool.fetchval(
            """
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND state = 'idle in transaction' AND query LIKE '%FOR UPDATE%'
            """
        )
        await store.save(realm, StoredTokens("rt-other"))  # the row is free again
        return StoredTokens("rt-1", "at-1", datetime.now(UTC) + timedelta(minutes=50))

    await store.rotate(realm, lose_the_connection_after_another_process_stored)

    assert (await store.load(realm)).refresh_token == "rt-other"


async def test_needs_reconnect_is_marked_only_for_the_stored_refresh_token(pool: Pool) -> None:
    realm = await connected_realm(pool, refresh_token="rt-new")
    store = PostgresTokenStore(pool, CIPHER)

    assert not await store.mark_needs_reconnect(realm, "invalid_grant", "rt-old")
    assert (await store.load(realm)).refresh_token == "rt-new"
    assert await store.mark_needs_reconnect(realm, "invalid_grant", "rt-new")
    with pytest.raises(NeedsReconnectError):
        await store.load(realm)
