"""A process that needs a realm's access token, for tests of refreshes across processes:
`python -m tests.support.refresher REALM` reads one customer count with the tokens stored
in PostgreSQL (DATABASE_URL, QBSYNC_SECRET_KEY, QBO_BASE_URL, QBO_TOKEN_URL, QBO_CLIENT_ID,
QBO_CLIENT_SECRET). It prints `refreshing` once it holds the realm's row and spends the
refresh token, then `ok` (exit 0) or `needs_reconnect` (exit 3). With `--loop` it refreshes
again and again, as if every access token were refused at once, until it is killed (one
line `refreshed N` per refresh)."""

from __future__ import annotations

import asyncio
import os
import sys

from qbsync.crypto import TokenCipher
from qbsync.db import connect_pool
from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.errors import NeedsReconnectError
from qbsync.quickbooks.postgres_tokens import PostgresTokenStore
from qbsync.quickbooks.tokens import Renewal, StoredTokens


class AnnouncingStore(PostgresTokenStore):
    async def rotate(self, realm_id: str, renew: Renewal) -> StoredTokens:
        async def announced(current: StoredTokens) -> StoredTokens:
            print("refreshing", flush=True)
            return await renew(current)

        return await super().rotate(realm_id, announced)


async def main(realm_id: str, loop: bool) -> int:
    pool = await connect_pool(os.environ["DATABASE_URL"], attempts=5, max_size=2)
    store = AnnouncingStore(pool, TokenCipher(os.environ["QBSYNC_SECRET_KEY"]))
    client = QuickBooksClient(
        base_url=os.environ["QBO_BASE_URL"],
        token_url=os.environ["QBO_TOKEN_URL"],
        client_id=os.environ["QBO_CLIENT_ID"],
        client_secret=os.environ["QBO_CLIENT_SECRET"],
        tokens=store,
        retry=RetryPolicy(attempts=3, base_delay=0.1),
    )
    try:
        await client.count_customers(realm_id)
        refreshes = 0
        while loop:
            token = await client.tokens.access_token(realm_id)
            await client.tokens.renew_after_rejection(realm_id, token)
            refreshes += 1
            print(f"refreshed {refreshes}", flush=True)
    except NeedsReconnectError:
        print("needs_reconnect", flush=True)
        return 3
    finally:
        await client.aclose()
        await pool.close()
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], "--loop" in sys.argv[2:])))
