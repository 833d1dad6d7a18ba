"""Access-token caching and expiry, and how refreshes use the token store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.errors import NeedsReconnectError
from qbsync.quickbooks.oauth import TokenManager, revoke_url_for, tokens_from_grant
from qbsync.quickbooks.tokens import InMemoryTokenStore, StoredTokens
from qbsync.quickbooks.transport import HttpClient
from tests.support.fake_quickbooks import REALM, TOKEN_URL, FakeQuickBooks

T0 = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[tuple[HttpClient, FakeQuickBooks]]:
    fake = FakeQuickBooks(expires_in=3600)
    client = HttpClient(timeout=30.0, connector=fake.connector)
    yield client, fake
    await client.aclose()
    await fake.close()


def manager(http: HttpClient, store: InMemoryTokenStore, clock: Clock) -> TokenManager:
    return TokenManager(
        http=http,
        token_url=TOKEN_URL,
        client_id="app",
        client_secret="secret",
        store=store,
        retry=RetryPolicy(attempts=2, base_delay=0),
        now=clock,
    )


def test_an_access_token_is_used_until_a_margin_before_expiry() -> None:
    grant = {"access_token": "a", "refresh_token": "r", "expires_in": 3600}
    tokens = tokens_from_grant(grant, T0)
    assert tokens.access_token_expires_at == T0 + timedelta(seconds=3540)
    assert tokens.usable_access_token(T0 + timedelta(seconds=3539)) == "a"
    assert tokens.usable_access_token(T0 + timedelta(seconds=3540)) is None
    short = tokens_from_grant({**grant, "expires_in": 10}, T0)  # test emulators: short lives
    assert short.access_token_expires_at == T0 + timedelta(seconds=8)


async def test_tokens_are_reused_until_expiry_then_refreshed_and_rotated(
    http: tuple[HttpClient, FakeQuickBooks],
) -> None:
    client, fake = http
    store = InMemoryTokenStore({REALM: "rt-0"})
    clock = Clock()
    tokens = manager(client, store, clock)

    assert await tokens.access_token(REALM) == "at-1"
    clock.now = T0 + timedelta(seconds=3000)
    assert await tokens.access_token(REALM) == "at-1"
    clock.now = T0 + timedelta(seconds=3600)
    assert await tokens.access_token(REALM) == "at-2"

    assert fake.token_requests == 2
    assert (await store.load(REALM)).refresh_token == "rt-2"


async def test_a_fresh_token_stored_by_another_process_is_used_without_refreshing(
    http: tuple[HttpClient, FakeQuickBooks],
) -> None:
    client, fake = http
    store = InMemoryTokenStore()
    await store.save(REALM, StoredTokens("rt-0", "at-other", T0 + timedelta(minutes=30)))

    assert await manager(client, store, Clock()).access_token(REALM) == "at-other"
    assert fake.token_requests == 0


async def test_after_a_401_a_token_someone_else_already_renewed_is_taken(
    http: tuple[HttpClient, FakeQuickBooks],
) -> None:
    client, fake = http
    store = InMemoryTokenStore({REALM: "rt-0"})
    clock = Clock()
    first = manager(client, store, clock)
    second = manager(client, store, clock)  # another process sharing the store
    rejected = await first.access_token(REALM)
    assert await second.access_token(REALM) == rejected  # read from the store

    renewed = await first.renew_after_rejection(REALM, rejected)
    assert await second.renew_after_rejection(REALM, rejected) == renewed
    assert fake.token_requests == 2  # the first grant and one renewal, not two


def test_the_revoke_url() -> None:
    intuit = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert revoke_url_for(intuit) == "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
    local = "http://127.0.0.1:8080/oauth2/v1/tokens/bearer"
    assert revoke_url_for(local) == "http://127.0.0.1:8080/oauth2/v1/tokens/revoke"


class CountingStore(InMemoryTokenStore):
    def __init__(self) -> None:
        super().__init__({REALM: "rt-0"})
        self.rotations = 0

    async def rotate(self, realm_id, renew):  # type: ignore[no-untyped-def]
        self.rotations += 1
        return await super().rotate(realm_id, renew)


async def test_concurrent_callers_in_one_process_queue_on_one_rotation(
    http: tuple[HttpClient, FakeQuickBooks],
) -> None:
    client, fake = http
    store = CountingStore()
    tokens = manager(client, store, Clock())

    got = await asyncio.gather(*(tokens.access_token(REALM) for _ in range(20)))

    assert set(got) == {"at-1"}
    assert store.rotations == 1  # the per-realm lock kept the other 19 off the store
    assert fake.token_requests == 1


class ReplacedWhileRefusedStore(InMemoryTokenStore):
    """Another process stores a newer token while ours is being refused (its save landed
    after our refresh started, as a rescued save after a database restart does)."""

    def __init__(self) -> None:
        super().__init__({REALM: "rt-spent-elsewhere"})

    async def rotate(self, realm_id, renew):  # type: ignore[no-untyped-def]
        try:
            return await super().rotate(realm_id, renew)
        except NeedsReconnectError:
            await self.save(realm_id, StoredTokens("rt-0"))
            raise


async def test_a_refused_refresh_token_that_was_replaced_meanwhile_is_not_a_reconnect(
    http: tuple[HttpClient, FakeQuickBooks],
) -> None:
    client, fake = http
    store = ReplacedWhileRefusedStore()

    token = await manager(client, store, Clock()).access_token(REALM)
    assert store.reconnect_reasons == {}
    stored = await store.load(REALM)
    assert stored.access_token == token
    assert fake.refresh_tokens == {stored.refresh_token} and stored.refresh_token != "rt-0"
    assert fake.token_requests == 2  # refused once, then the stored newer token


async def test_a_refused_refresh_token_still_stored_marks_the_connection(
    http: tuple[HttpClient, FakeQuickBooks],
) -> None:
    client, _ = http
    store = InMemoryTokenStore({REALM: "rt-revoked"})
    with pytest.raises(NeedsReconnectError):
        await manager(client, store, Clock()).access_token(REALM)
    assert "invalid_grant" in store.reconnect_reasons[REALM]
