"""The match step on a firm large enough for many chunks (real PostgreSQL, a scripted
QuickBooks): chunks linked and first-synced in parallel reach exactly the effects of the
one-pair-at-a-time rules, and a pair whose QuickBooks call fails stops no other pair."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from qbsync.db import pairs as db_pairs
from qbsync.db.accounts import store_accounts
from qbsync.db.customers import store_customers
from qbsync.db.links import insert_links
from qbsync.db.pairs import load_pairs, load_sides
from qbsync.db.pool import Pool
from qbsync.db.unit_of_work import PostgresUnitOfWork
from qbsync.quickbooks.errors import ServerError
from qbsync.sync.steps import MatchOutcome, match_firm, sync_new_links
from schemas import AccountEvent, CustomerRecord
from tests.conftest import unique

PAIRS = 40


class ScriptedQuickBooks:
    """update_customer applies the change to its own copy; chosen customers fail."""

    def __init__(self, realm_id: str, failing: set[str] | None = None) -> None:
        self.realm_id = realm_id
        self.failing = failing or set()
        self.updates: dict[str, dict[str, Any]] = {}

    async def update_customer(
        self,
        realm_id: str,
        customer_id: str,
        sync_token: str | None,
        changes: dict[str, Any],
        *,
        request_id: str,
    ) -> dict[str, Any]:
        if customer_id in self.failing:
            raise ServerError(realm_id=realm_id, operation="update_customer", message="boom")
        self.updates[customer_id] = changes
        return {
            "Id": customer_id,
            "SyncToken": str(int(sync_token or "0") + 1),
            "DisplayName": f"Customer {customer_id}",
            "Active": True,
            **changes,
        }

    def customers(self, realm_id: str, *, include_inactive: bool = False) -> Any:
        raise AssertionError("the match step never reads QuickBooks")

    async def read_customer(self, realm_id: str, customer_id: str) -> dict[str, Any]:
        raise AssertionError("not expected")

    async def find_customers_by_name(self, realm_id: str, name: str) -> list[dict[str, Any]]:
        raise AssertionError("not expected")

    async def create_customer(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        raise AssertionError("not expected")


def kind(n: int) -> str:
    """Pair n's first sync: QuickBooks has a phone (fill Liscio), Liscio has a website
    (write QuickBooks), both equal (nothing), or both at once."""
    return ("fill", "write", "equal", "both")[n % 4]


async def seed(pool: Pool, firm_id: str, realm_id: str) -> None:
    now = datetime.now(UTC)
    events, records = [], []
    for n in range(PAIRS):
        k = kind(n)
        account: dict[str, Any] = {"id": f"a{n:03d}", "name": f"CLIENT {n:03d}"}
        record: dict[str, Any] = {
            "realm_id": realm_id,
            "customer_id": str(100 + n),
            "display_name": f"Client {n:03d}",
            "sync_token": "3",
        }
        if k in ("fill", "both"):
            record["phone"] = f"512-555-{n:04d}"
        if k in ("write", "both"):
            account["website"] = f"https://client{n}.example"
        if k == "equal":
            account["phone"] = record["phone"] = "512-555-0000"
        events.append(
            AccountEvent.model_validate(
                {
                    "event_id": unique("e"),
                    "type": "account.created",
                    "occurred_at": now,
                    "firm_id": firm_id,
                    "account": account,
                }
            )
        )
        records.append(CustomerRecord.model_validate(record))
    await store_accounts(pool, events)
    await store_customers(pool, records)


async def fill_commands(pool: Pool, firm_id: str) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT value FROM outbox WHERE topic = 'liscio.account-commands' AND key LIKE $1",
        f"{firm_id}:%",
    )
    values = [r["value"] if isinstance(r["value"], dict) else json.loads(r["value"]) for r in rows]
    return {v["account_id"]: v["fields"] for v in values}


async def assert_every_pair_linked_and_first_synced_once(
    pool: Pool, firm_id: str, realm_id: str, outcome: MatchOutcome
) -> None:
    fills = [n for n in range(PAIRS) if kind(n) in ("fill", "both")]
    writes = [n for n in range(PAIRS) if kind(n) in ("write", "both")]
    assert outcome.linked == PAIRS and outcome.ambiguous == 0
    first = outcome.first_sync
    assert (first.pairs, first.errors) == (PAIRS, [])
    assert first.quickbooks_writes == len(writes)
    assert first.liscio_fills == len(fills)
    assert first.unchanged == PAIRS - len(set(fills) | set(writes))
    assert await fill_commands(pool, firm_id) == {
        f"a{n:03d}": {"phone": f"512-555-{n:04d}"} for n in fills
    }
    links = await pool.fetch(
        "SELECT account_id, customer_id, first_synced_at FROM links WHERE firm_id = $1", firm_id
    )
    assert sorted((r["account_id"], r["customer_id"]) for r in links) == [
        (f"a{n:03d}", str(100 + n)) for n in range(PAIRS)
    ]
    assert all(r["first_synced_at"] is not None for r in links)
    # What QuickBooks answered is kept: the next write starts from the new SyncToken.
    tokens = await pool.fetch(
        "SELECT customer_id, sync_token FROM customers WHERE realm_id = $1", realm_id
    )
    assert {r["customer_id"]: r["sync_token"] for r in tokens} == {
        str(100 + n): "4" if n in writes else "3" for n in range(PAIRS)
    }
    # Exactly once: one link event, one link audit entry, one entry per field written and
    # one fill command per pair that fills.
    audit = await pool.fetch(
        "SELECT action, account_id, side, field FROM audit_log WHERE firm_id = $1", firm_id
    )
    expected = [("link.created", f"a{n:03d}", None, None) for n in range(PAIRS)]
    expected += [("field.written", f"a{n:03d}", "liscio", "phone") for n in fills]
    expected += [("field.written", f"a{n:03d}", "quickbooks", "website") for n in writes]
    assert sorted(tuple(r) for r in audit) == sorted(expected)
    messages = await pool.fetch(
        "SELECT topic, count(*) AS n FROM outbox WHERE key LIKE $1 GROUP BY topic",
        f"{firm_id}:%",
    )
    assert {r["topic"]: r["n"] for r in messages} == {
        "sync.links": PAIRS,
        "liscio.account-commands": len(fills),
    }


async def test_chunks_in_parallel_link_and_first_sync_every_pair(pool: Pool) -> None:
    firm_id, realm_id = unique("firm"), unique("realm")
    await seed(pool, firm_id, realm_id)
    quickbooks = ScriptedQuickBooks(realm_id)

    outcome = await match_firm(
        PostgresUnitOfWork(pool),
        quickbooks,
        firm_id,
        realm_id,
        None,
        chunk=7,
        workers=3,
    )

    await assert_every_pair_linked_and_first_synced_once(pool, firm_id, realm_id, outcome)
    assert quickbooks.updates == {
        str(100 + n): {"WebAddr": {"URI": f"https://client{n}.example"}}
        for n in range(PAIRS)
        if kind(n) in ("write", "both")
    }


async def test_a_chunk_whose_first_sync_fails_is_linked_alone_and_first_synced_after(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    firm_id, realm_id = unique("firm"), unique("realm")
    await seed(pool, firm_id, realm_id)
    quickbooks = ScriptedQuickBooks(realm_id)
    failing_chunks = 2

    async def flaky_load_sides(*args: Any) -> Any:
        nonlocal failing_chunks
        if failing_chunks:
            failing_chunks -= 1
            raise RuntimeError("lost the connection")
        return await load_sides(*args)

    monkeypatch.setattr(db_pairs, "load_sides", flaky_load_sides)
    outcome = await match_firm(
        PostgresUnitOfWork(pool),
        quickbooks,
        firm_id,
        realm_id,
        None,
        chunk=7,
        workers=1,
    )

    assert failing_chunks == 0
    await assert_every_pair_linked_and_first_synced_once(pool, firm_id, realm_id, outcome)


async def test_a_failed_quickbooks_call_leaves_that_first_sync_owed_and_no_other(
    pool: Pool,
) -> None:
    firm_id, realm_id = unique("firm"), unique("realm")
    await seed(pool, firm_id, realm_id)
    failing = "101"  # pair 1 writes its website to QuickBooks
    async with pool.acquire() as conn, conn.transaction():
        pairs = [(f"a{n:03d}", str(100 + n)) for n in range(PAIRS)]
        await insert_links(conn, firm_id, realm_id, pairs, "manual")
    quickbooks = ScriptedQuickBooks(realm_id, {failing})
    owed = [f"a{n:03d}" for n in range(PAIRS)]

    counts = await sync_new_links(
        PostgresUnitOfWork(pool), quickbooks, firm_id, owed, None, chunk=6
    )

    assert len(counts.errors) == 1 and counts.errors[0].startswith("a001: ")
    assert counts.pairs == PAIRS
    still_owed = await pool.fetch(
        "SELECT account_id FROM links WHERE firm_id = $1 AND first_synced_at IS NULL", firm_id
    )
    assert [r["account_id"] for r in still_owed] == ["a001"]
    assert failing not in quickbooks.updates
    writes = [n for n in range(PAIRS) if kind(n) in ("write", "both")]
    assert sorted(quickbooks.updates) == sorted(str(100 + n) for n in writes if n != 1)
    fills = [n for n in range(PAIRS) if kind(n) in ("fill", "both")]
    assert sorted(await fill_commands(pool, firm_id)) == [f"a{n:03d}" for n in fills if n != 1]


async def test_pairs_of_given_accounts_are_each_loaded_once_in_account_order(pool: Pool) -> None:
    firm_id, realm_id = unique("firm"), unique("realm")
    await seed(pool, firm_id, realm_id)
    async with pool.acquire() as conn:
        await insert_links(conn, firm_id, realm_id, [("a002", "102"), ("a001", "101")], "auto")

    # Duplicates and accounts without a link (a003 has none, "nobody" does not exist).
    pairs = await load_pairs(pool, firm_id, ["a002", "a003", "a001", "a002", "nobody"])

    assert [(p.link.account_id, p.customer.customer_id) for p in pairs] == [
        ("a001", "101"),
        ("a002", "102"),
    ]
    assert [p.link.account_id for p in await load_pairs(pool, firm_id)] == ["a001", "a002"]


async def test_links_owed_from_before_get_their_first_sync_with_the_new_ones(pool: Pool) -> None:
    firm_id, realm_id = unique("firm"), unique("realm")
    await seed(pool, firm_id, realm_id)
    earlier = [(f"a{n:03d}", str(100 + n)) for n in range(0, PAIRS, 3)]  # linked, not synced
    async with pool.acquire() as conn, conn.transaction():
        await insert_links(conn, firm_id, realm_id, earlier, "manual")
    quickbooks = ScriptedQuickBooks(realm_id)

    outcome = await match_firm(
        PostgresUnitOfWork(pool),
        quickbooks,
        firm_id,
        realm_id,
        None,
        chunk=5,
        workers=2,
    )

    assert outcome.linked == PAIRS - len(earlier)
    first = outcome.first_sync
    assert (first.pairs, first.errors) == (PAIRS, [])
    fills = [n for n in range(PAIRS) if kind(n) in ("fill", "both")]
    writes = [n for n in range(PAIRS) if kind(n) in ("write", "both")]
    assert (first.liscio_fills, first.quickbooks_writes) == (len(fills), len(writes))
    assert sorted(quickbooks.updates) == sorted(str(100 + n) for n in writes)
    assert await fill_commands(pool, firm_id) == {
        f"a{n:03d}": {"phone": f"512-555-{n:04d}"} for n in fills
    }
    commands = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic = 'liscio.account-commands' AND key LIKE $1",
        f"{firm_id}:%",
    )
    assert commands == len(fills)  # each once
    owed = await pool.fetchval(
        "SELECT count(*) FROM links WHERE firm_id = $1 AND first_synced_at IS NULL", firm_id
    )
    assert owed == 0
