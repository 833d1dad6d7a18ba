"""Issue 16, point 5: several processes refresh one realm's token at once, and the one
whose refresh QuickBooks has applied is SIGKILLed before it stores the answer (the emulator
holds the answer, so the kill lands in that window every time).

Against Intuit's documented rotation (the previous refresh token works for 24 hours after
a new one is issued) the others carry on with the newest refresh token stored and the
connection usable. Against a strict issuer (the previous token dead at once) the same kill
loses the connection: that is the window no client can close, shown here so the first test
is known to land its kill in it."""

from __future__ import annotations

import sys
import time

import pytest

from qbsync.crypto import TokenCipher
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from qbsync.emulator import RunningEmulator
from qbsync.quickbooks.postgres_tokens import PostgresTokenStore
from tests.conftest import unique
from tests.support.keys import TEST_SECRET_KEY
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess

SECRET = TEST_SECRET_KEY
REFRESHERS = 3


async def kill_the_refresher_quickbooks_answered(
    pool: Pool, emulator: RunningEmulator, env: dict[str, str], strict: bool
) -> tuple[str, str, list[ServiceProcess]]:
    created = await emulator.admin.create_realm(contents="empty")
    realm, first_token = str(created["realm_id"]), str(created["refresh_token"])
    await store_connection(pool, TokenCipher(SECRET), unique("firm"), realm, first_token)
    await emulator.admin.token_rotation(
        previous_token_seconds=0 if strict else 86_400, hold_answers=True
    )
    refreshers = [
        ServiceProcess(
            "tests.support.refresher", env, [sys.executable, "-m", "tests.support.refresher", realm]
        )
        for _ in range(REFRESHERS)
    ]

    async def one_refresh_held() -> bool:
        return (await emulator.admin.token_rotation())["held"] == 1

    await eventually(one_refresh_held, timeout=60, what="one refresh held by QuickBooks")
    holders = [r for r in refreshers if "refreshing" in r.output()]
    assert len(holders) == 1, [r.output() for r in refreshers]  # the others wait on the row
    holder = holders[0]
    holder.kill()  # QuickBooks has rotated; the answer never reaches the process
    await emulator.admin.release_token_answers()
    return realm, first_token, [r for r in refreshers if r is not holder]


async def finished(processes: list[ServiceProcess], timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout

    async def all_done() -> bool:
        return all(p.process.poll() is not None for p in processes)

    await eventually(all_done, timeout=max(1.0, deadline - time.monotonic()), what="refreshers")
    return [p.stop() for p in processes]


@pytest.fixture
def refresher_env(service_env: dict[str, str], emulator: RunningEmulator) -> dict[str, str]:
    return {
        **service_env,
        "QBSYNC_SECRET_KEY": SECRET,
        "QBO_BASE_URL": emulator.base_url,
        "QBO_TOKEN_URL": emulator.token_url,
        "QBO_CLIENT_ID": emulator.client_id,
        "QBO_CLIENT_SECRET": emulator.client_secret,
    }


@pytest.mark.timeout(180)
async def test_a_refresher_killed_after_quickbooks_rotated_loses_nothing(
    pool: Pool, emulator: RunningEmulator, refresher_env: dict[str, str]
) -> None:
    realm, first_token, survivors = await kill_the_refresher_quickbooks_answered(
        pool, emulator, refresher_env, strict=False
    )

    codes = await finished(survivors)
    assert codes == [0] * len(survivors), [s.output() for s in survivors]
    status = await pool.fetchval("SELECT status FROM connections WHERE realm_id = $1", realm)
    assert status == "connected"
    stored = await PostgresTokenStore(pool, TokenCipher(SECRET)).load(realm)
    # The newest refresh token of the grant is the one kept: nothing rotated it away.
    assert stored.refresh_token == emulator.store.tokens.newest_refresh_token(first_token)
    assert stored.refresh_token != first_token
    # ... and it still refreshes once the grace of the one the killed process spent is over.
    await emulator.admin.token_rotation(previous_token_seconds=0)
    assert emulator.store.tokens.refresh(stored.refresh_token, time.time()).access_token


@pytest.mark.timeout(180)
async def test_against_a_strict_issuer_the_same_kill_loses_the_connection(
    pool: Pool, emulator: RunningEmulator, refresher_env: dict[str, str]
) -> None:
    realm, _, survivors = await kill_the_refresher_quickbooks_answered(
        pool, emulator, refresher_env, strict=True
    )

    codes = await finished(survivors)
    assert codes == [3] * len(survivors), [s.output() for s in survivors]
    status = await pool.fetchval("SELECT status FROM connections WHERE realm_id = $1", realm)
    assert status == "needs_reconnect"
