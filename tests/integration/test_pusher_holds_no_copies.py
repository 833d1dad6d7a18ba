"""Found by make chaos: while the pusher's batch waited on QuickBooks (a throttled realm:
up to a minute), the account rows it had upserted in that transaction held the matcher's
one upsert of a whole batch of every firm's accounts, which gave up at its 60 s command
timeout and started over. The pusher now keeps the account states before the transaction
that waits: storing a copy of the same account goes on meanwhile (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from qbsync.crypto import TokenCipher
from qbsync.db.accounts import get_account, store_accounts
from qbsync.db.connections import store_connection
from qbsync.db.customers import store_customers
from qbsync.db.links import insert_links
from qbsync.db.pool import Pool
from qbsync.db.unit_of_work import PostgresUnitOfWork
from qbsync.sync.account_events import sync_linked_updates
from schemas import AccountEvent, CustomerRecord
from tests.conftest import unique
from tests.support.keys import TEST_SECRET_KEY


class ThrottledQuickBooks:
    """An update that waits (as one waits out a Retry-After) until the test lets it go."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()

    async def update_customer(
        self,
        realm_id: str,
        customer_id: str,
        sync_token: str | None,
        changes: dict[str, Any],
        *,
        request_id: str,
    ) -> dict[str, Any]:
        self.waiting.set()
        await self.go.wait()
        return {"Id": customer_id, "SyncToken": "2", "DisplayName": "Held Co", **changes}


def event(firm_id: str, phone: str, at: datetime) -> AccountEvent:
    return AccountEvent.model_validate(
        {
            "event_id": unique("e"),
            "type": "account.updated",
            "occurred_at": at,
            "firm_id": firm_id,
            "account": {"id": "a-held", "name": "Held Co", "status": "Client", "phone": phone},
        }
    )


async def test_a_batch_waiting_on_quickbooks_holds_no_account_copy(pool: Pool) -> None:
    firm_id, realm_id = unique("firm"), unique("realm")
    now = datetime.now(UTC)
    await store_connection(pool, TokenCipher(TEST_SECRET_KEY), firm_id, realm_id, "rt")
    await store_accounts(pool, [event(firm_id, "512-555-0001", now - timedelta(minutes=1))])
    customer = CustomerRecord(
        realm_id=realm_id, customer_id="7", display_name="Held Co", sync_token="1"
    )
    await store_customers(pool, [customer])
    await insert_links(pool, firm_id, realm_id, [("a-held", "7")], "auto", first_synced=[True])
    quickbooks = ThrottledQuickBooks()
    update = event(firm_id, "512-555-0002", now)

    pushing = asyncio.ensure_future(
        sync_linked_updates(PostgresUnitOfWork(pool), quickbooks, firm_id, {"a-held": [update]})
    )
    try:
        await asyncio.wait_for(quickbooks.waiting.wait(), 30)
        # The matcher keeps a newer state of the same account meanwhile.
        await asyncio.wait_for(store_accounts(pool, [event(firm_id, "512-555-0003", now)]), 10)
    finally:
        quickbooks.go.set()
        batch = await asyncio.wait_for(pushing, 30)

    assert batch.failures == [] and batch.not_linked == []
    stored = await get_account(pool, firm_id, "a-held")
    assert stored is not None and stored.fields.phone == "512-555-0003"
