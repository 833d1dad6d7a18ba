"""QuickBooksClient against the QuickBooks emulator over real HTTP.

What the server saw (requests in flight, 429s, retried request ids, rows written) is read
from the emulator's request log and admin API, never from the client's own view.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qbsync.crypto import TokenCipher
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from qbsync.emulator.runner import RunningEmulator
from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import CUSTOMER_PAGES_AHEAD, QuickBooksClient
from qbsync.quickbooks.errors import (
    DuplicateNameError,
    NeedsReconnectError,
    QuickBooksValidationError,
    TransportError,
)
from qbsync.quickbooks.limiter import Limits
from qbsync.quickbooks.postgres_tokens import PostgresTokenStore
from qbsync.quickbooks.tokens import InMemoryTokenStore
from tests.conftest import unique
from tests.support.keys import TEST_SECRET_KEY
from tests.support.qbo import client_for

CIPHER = TokenCipher(TEST_SECRET_KEY)


@pytest.fixture
async def realm(emulator: RunningEmulator) -> str:
    """A sandbox-like realm of this test's own."""
    created = await emulator.admin.create_realm()
    return str(created["realm_id"])


@pytest.fixture
async def qbo(emulator: RunningEmulator) -> AsyncIterator[QuickBooksClient]:
    store = InMemoryTokenStore({emulator.realm_id: emulator.refresh_token})
    async with client_for(emulator, store) as client:
        yield client


def statuses(log: list[dict[str, Any]]) -> Counter[int]:
    return Counter(int(entry["status"]) for entry in log)


async def test_fifty_coroutines_stay_within_in_flight_and_window_limits(
    emulator: RunningEmulator,
) -> None:
    realm = emulator.realm_id
    # The real 10 in flight; the window compressed to 60 requests a second so that 150
    # requests must span several windows; 20 ms latency keeps requests overlapping.
    await emulator.admin.set_limits(realm, max_requests_per_window=60, window_seconds=1.0)
    await emulator.admin.set_faults(realm, latency_ms=20)
    limits = Limits(max_per_window=60, window_seconds=1.0, max_in_flight=10)
    store = InMemoryTokenStore({realm: emulator.refresh_token})
    async with client_for(emulator, store, limits=limits) as client:
        ids = [c["Id"] async for c in client.customers(realm)][:5]
        await emulator.admin.clear_requests(realm)
        await emulator.admin.reset_limit_counters(realm)

        async def hammer(n: int) -> None:
            for k in range(3):
                await client.read_customer(realm, ids[(n + k) % len(ids)])

        await asyncio.gather(*(hammer(n) for n in range(50)))

    log = await emulator.admin.requests(realm)
    counters = await emulator.admin.limits(realm)
    assert len(log) == 150
    assert statuses(log) == {200: 150}
    assert counters["throttled_total"] == 0
    assert counters["peak_in_flight"] == 10  # the client did use all ten, and no more
    assert max(entry["in_flight_at_arrival"] for entry in log) <= 9
    arrivals = sorted(entry["started_at"] for entry in log)
    busiest = max(
        sum(1 for other in arrivals if start <= other < start + 1.0) for start in arrivals
    )
    assert busiest <= 60
    assert arrivals[-1] - arrivals[0] >= 2.0  # 150 requests at 60 per second


async def test_every_write_is_retried_after_a_dropped_answer_and_written_once(
    emulator: RunningEmulator, qbo: QuickBooksClient
) -> None:
    realm = emulator.realm_id
    existing = [c async for c in qbo.customers(realm)][:5]
    items = await qbo.items(realm)
    await emulator.admin.set_faults(realm, drop_rate=1.0)  # every write: applied, then dropped
    await emulator.admin.clear_requests(realm)
    names = [unique("Dropped Answer Co") for _ in range(5)]

    created = await asyncio.gather(
        *(
            qbo.create_customer(realm, {"DisplayName": name}, request_id=unique("create"))
            for name in names
        )
    )
    updated = await asyncio.gather(
        *(
            qbo.update_customer(
                realm,
                c["Id"],
                c["SyncToken"],
                {"PrimaryPhone": {"FreeFormNumber": "512-555-0199"}},
                request_id=unique("update"),
            )
            for c in existing
        )
    )
    invoice = await qbo.create_invoice(
        realm,
        {
            "CustomerRef": {"value": created[0]["Id"]},
            "Line": [
                {
                    "Amount": 100.0,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": items[0]["Id"]}},
                }
            ],
        },
        request_id=unique("invoice"),
    )

    stored = await emulator.admin.customers(realm)
    for name in names:
        assert [c["DisplayName"] for c in stored].count(name) == 1
    for before, after in zip(existing, updated, strict=True):
        assert int(after["SyncToken"]) == int(before["SyncToken"]) + 1  # written once
    invoices = [i for i in await emulator.admin.invoices(realm) if i["Id"] == invoice["Id"]]
    assert len(invoices) == 1
    assert [i["CustomerRef"]["value"] for i in await emulator.admin.invoices(realm)].count(
        created[0]["Id"]
    ) == 1
    writes = [entry for entry in await emulator.admin.requests(realm) if entry["request_id"]]
    per_request_id = Counter(entry["request_id"] for entry in writes)
    assert len(per_request_id) == 11
    assert set(per_request_id.values()) == {2}  # each write: the dropped one and one retry
    assert sum(1 for entry in writes if entry["dropped"]) == 11


async def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(
    emulator: RunningEmulator, qbo: QuickBooksClient
) -> None:
    realm = emulator.realm_id
    first = await qbo.read_customer(realm, "1")
    await emulator.admin.expire_access_tokens(realm)
    await emulator.admin.clear_requests(realm)

    again = await qbo.read_customer(realm, "1")

    assert again["Id"] == first["Id"]
    assert [entry["status"] for entry in await emulator.admin.requests(realm)] == [401, 200]
    assert qbo.tokens.refreshes == 2


async def test_invalid_grant_asks_for_a_reconnect(emulator: RunningEmulator) -> None:
    store = InMemoryTokenStore({emulator.realm_id: "a-refresh-token-nobody-issued"})
    async with client_for(emulator, store) as client:
        with pytest.raises(NeedsReconnectError) as raised:
            await client.read_customer(emulator.realm_id, "1")

    assert raised.value.code == "invalid_grant"
    assert emulator.realm_id in store.reconnect_reasons


async def test_rotated_tokens_are_stored_encrypted_and_refreshes_collapse_across_processes(
    emulator: RunningEmulator, pool: Pool
) -> None:
    created = await emulator.admin.create_realm()
    realm, initial = str(created["realm_id"]), str(created["refresh_token"])
    await store_connection(pool, CIPHER, unique("firm"), realm, initial)
    # Three clients, each with its own store and locks, stand for three service processes.
    clients = [client_for(emulator, PostgresTokenStore(pool, CIPHER)) for _ in range(3)]
    try:
        await asyncio.gather(
            *(client.read_customer(realm, "1") for client in clients for _ in range(10))
        )
    finally:
        for client in clients:
            await client.aclose()

    assert sum(client.tokens.refreshes for client in clients) == 1
    row = await pool.fetchrow(
        "SELECT refresh_token_enc, status FROM connections WHERE realm_id = $1", realm
    )
    assert row is not None and row["status"] == "connected"
    stored = CIPHER.decrypt(bytes(row["refresh_token_enc"]))
    assert stored != initial
    assert stored.encode() not in bytes(row["refresh_token_enc"])
    # The stored token is the grant's newest; the first was rotated away (and is refused
    # once its 24 hours of grace are over, at once here in strict mode).
    assert stored == emulator.store.tokens.newest_refresh_token(initial)
    await emulator.admin.token_rotation(previous_token_seconds=0)
    async with client_for(emulator, InMemoryTokenStore({realm: initial})) as stale:
        with pytest.raises(NeedsReconnectError):
            await stale.read_customer(realm, "1")
    await emulator.admin.expire_access_tokens(realm)
    async with client_for(emulator, PostgresTokenStore(pool, CIPHER)) as fresh:
        assert (await fresh.read_customer(realm, "1"))["Id"] == "1"


async def test_a_stale_sync_token_is_resolved_by_rereading_and_reapplying(
    emulator: RunningEmulator, qbo: QuickBooksClient
) -> None:
    realm = emulator.realm_id
    before = await qbo.read_customer(realm, "1")
    await emulator.admin.edit_customer_as_user(
        realm, "1", {"WebAddr": {"URI": "https://edited-by-a-person.example"}}
    )
    await emulator.admin.clear_requests(realm)

    after = await qbo.update_customer(
        realm,
        "1",
        before["SyncToken"],
        {"PrimaryPhone": {"FreeFormNumber": "512-555-0142"}},
        request_id=unique("update"),
    )

    assert int(after["SyncToken"]) == int(before["SyncToken"]) + 2
    assert after["PrimaryPhone"]["FreeFormNumber"] == "512-555-0142"
    assert after["WebAddr"]["URI"] == "https://edited-by-a-person.example"
    log = await emulator.admin.requests(realm)
    assert [(entry["method"], entry["status"]) for entry in log] == [
        ("POST", 400),
        ("GET", 200),
        ("POST", 200),
    ]


async def test_client_errors_are_raised_once_never_retried(
    emulator: RunningEmulator, qbo: QuickBooksClient
) -> None:
    realm = emulator.realm_id
    taken = (await qbo.read_customer(realm, "1"))["DisplayName"]
    await emulator.admin.clear_requests(realm)

    with pytest.raises(DuplicateNameError) as duplicate:
        await qbo.create_customer(realm, {"DisplayName": taken.upper()}, request_id=unique("dup"))
    with pytest.raises(QuickBooksValidationError) as invalid:
        await qbo.create_customer(
            realm, {"DisplayName": unique("Bad"), "BillAddr": "not an address"}, request_id="b"
        )

    assert duplicate.value.code == "6240"
    assert realm in str(duplicate.value) and "create_customer" in str(duplicate.value)
    assert invalid.value.code is not None and invalid.value.status == 400
    assert [entry["status"] for entry in await emulator.admin.requests(realm)] == [400, 400]


async def test_server_errors_and_timeouts_are_retried(emulator: RunningEmulator) -> None:
    realm = emulator.realm_id
    store = InMemoryTokenStore({realm: emulator.refresh_token})
    patient = RetryPolicy(attempts=15, base_delay=0.001, max_delay=0.01)
    async with client_for(emulator, store, retry=patient) as client:
        await emulator.admin.set_faults(realm, fault_5xx_rate=0.3)
        await emulator.admin.clear_requests(realm)
        read = await asyncio.gather(*(client.read_customer(realm, "1") for _ in range(20)))
        assert {c["Id"] for c in read} == {"1"}
        assert statuses(await emulator.admin.requests(realm))[500] > 0

    await emulator.admin.set_faults(realm, fault_5xx_rate=0, slow_rate=1.0, slow_ms=1000)
    await emulator.admin.clear_requests(realm)
    two_tries = RetryPolicy(attempts=2, base_delay=0.001)
    async with client_for(emulator, store, retry=two_tries, timeout=0.2) as client:
        with pytest.raises(TransportError) as raised:
            await client.read_customer(realm, "1")
    assert "Timeout" in str(raised.value)
    assert len(await emulator.admin.requests(realm)) == 2


async def test_paging_counts_and_inactive_customers(emulator: RunningEmulator) -> None:
    created = await emulator.admin.create_realm(contents="empty")
    realm = str(created["realm_id"])
    await emulator.admin.bulk_customers(realm, 2300, inactive_every=10)
    store = InMemoryTokenStore({realm: str(created["refresh_token"])})
    async with client_for(emulator, store) as client:
        # Without read-ahead, so that the number of page requests is exact.
        active = [c async for c in client.customers(realm, pages_ahead=0)]
        everyone = [c async for c in client.customers(realm, include_inactive=True, pages_ahead=0)]
        assert await client.count_customers(realm) == len(active)
        assert await client.count_customers(realm, include_inactive=True) == 2300

    assert len(everyone) == 2300
    assert len({c["Id"] for c in everyone}) == 2300
    assert len(active) == 2300 - 230
    assert all(c["Active"] for c in active)
    pages = [e for e in await emulator.admin.requests(realm) if e["operation"] == "query"]
    assert len(pages) == 3 + 3 + 2  # two paged reads of 3 pages, two counts

    # Read-ahead (the default for imports) costs at most that many requests past the end.
    await emulator.admin.clear_requests(realm)
    async with client_for(emulator, store) as client:
        assert len([c async for c in client.customers(realm, include_inactive=True)]) == 2300
    pages = [e for e in await emulator.admin.requests(realm) if e["operation"] == "query"]
    assert 3 <= len(pages) <= 3 + CUSTOMER_PAGES_AHEAD


async def test_find_by_name_ignores_case(emulator: RunningEmulator, qbo: QuickBooksClient) -> None:
    realm = emulator.realm_id
    name = unique("O'Brien & Casefold Bakery")
    made = await qbo.create_customer(realm, {"DisplayName": name}, request_id=unique("c"))

    found = await qbo.find_customers_by_name(realm, name.upper())

    assert [c["Id"] for c in found] == [made["Id"]]
    assert await qbo.find_customers_by_name(realm, name + " Ltd") == []


async def test_cdc_reports_edits_and_merges(
    emulator: RunningEmulator, qbo: QuickBooksClient
) -> None:
    realm = emulator.realm_id
    since = datetime.now(UTC) - timedelta(seconds=1)
    first = await qbo.create_customer(realm, {"DisplayName": unique("Cdc A")}, request_id="a")
    second = await qbo.create_customer(realm, {"DisplayName": unique("Cdc B")}, request_id="b")
    await emulator.admin.merge_customers(realm, second["Id"], first["Id"])

    changes = await qbo.customer_changes(realm, since)

    by_id = {c["Id"]: c for c in changes.customers}
    assert by_id[second["Id"]].get("status") == "Deleted"
    assert by_id[first["Id"]]["DisplayName"] == first["DisplayName"]
    assert changes.time >= since
    # `time` has millisecond precision and changedSince is inclusive, so a change made in
    # the very millisecond of that answer is reported again from it (consumers are
    # idempotent). With a fast client the merge can fall in that millisecond; from the
    # next one on it must not appear.
    later = await qbo.customer_changes(realm, changes.time + timedelta(milliseconds=1))
    assert second["Id"] not in {c["Id"] for c in later.customers}


async def test_batch_counts_every_item(emulator: RunningEmulator, qbo: QuickBooksClient) -> None:
    realm = emulator.realm_id
    customers = [c async for c in qbo.customers(realm)][:29]
    assert len(customers) >= 20
    await emulator.admin.reset_limit_counters(realm)
    items: list[dict[str, Any]] = [
        {
            "bId": f"u{c['Id']}",
            "operation": "update",
            "Customer": {"Id": c["Id"], "SyncToken": c["SyncToken"], "sparse": True,
                         "WebAddr": {"URI": f"https://batch-{c['Id']}.example"}},
        }
        for c in customers
    ]  # fmt: skip
    items.append({"bId": "q", "Query": "select count(*) from Customer"})

    answers = await qbo.batch(realm, items)

    assert {a["bId"] for a in answers} == {item["bId"] for item in items}
    assert all("Fault" not in a for a in answers)
    assert (await emulator.admin.limits(realm))["used_in_window"] == len(items)
    assert qbo.limiters.for_realm(realm).occupied() >= len(items)


async def test_invoices_are_created_and_found_by_customer(
    emulator: RunningEmulator, qbo: QuickBooksClient
) -> None:
    realm = emulator.realm_id
    items = await qbo.items(realm)
    customer = await qbo.create_customer(realm, {"DisplayName": unique("Invoiced")}, request_id="c")
    line = {
        "Amount": 250.0,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": items[0]["Id"]}},
    }
    invoice = await qbo.create_invoice(
        realm, {"CustomerRef": {"value": customer["Id"]}, "Line": [line]}, request_id="i"
    )

    found = await qbo.invoices_of_customers(realm, [customer["Id"], "1"])

    assert [i["Id"] for i in found] == [invoice["Id"]]
    assert items and all("Id" in item for item in items)


async def test_revoke_ends_the_connection(emulator: RunningEmulator) -> None:
    realm = emulator.realm_id
    store = InMemoryTokenStore({realm: emulator.refresh_token})
    async with client_for(emulator, store) as client:
        await client.read_customer(realm, "1")
        await client.revoke(realm)
        await emulator.admin.expire_access_tokens(realm)
        with pytest.raises(NeedsReconnectError):
            await client.read_customer(realm, "1")
