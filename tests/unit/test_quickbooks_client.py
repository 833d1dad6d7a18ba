"""The QuickBooks client against a scripted stand-in (tests/support/fake_quickbooks.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from qbsync.config import Settings
from qbsync.errors import ConfigurationError
from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import (
    STALE_OBJECT_ATTEMPTS,
    QuickBooksClient,
    quote,
    reapplied_request_id,
)
from qbsync.quickbooks.errors import (
    AuthenticationError,
    DuplicateNameError,
    NeedsReconnectError,
    NotConnectedError,
    ObjectNotFoundError,
    QuickBooksUnavailable,
    QuickBooksValidationError,
    ServerError,
    StaleObjectError,
    ThrottledError,
    TransportError,
)
from qbsync.quickbooks.limiter import Limits
from qbsync.quickbooks.tokens import InMemoryTokenStore, StoredTokens
from tests.support.fake_quickbooks import (
    BASE_URL,
    REALM,
    TOKEN_URL,
    Answer,
    Dropped,
    FakeQuickBooks,
    SeenRequest,
    body_of,
    customer,
    fault,
    query_of,
)

RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


class Harness:
    def __init__(self, limits: Limits | None = None, retry: RetryPolicy = RETRY) -> None:
        self.fake = FakeQuickBooks()
        self.store = InMemoryTokenStore({REALM: "rt-0"})
        self.sleeps: list[float] = []
        self.now = 0.0  # the client's monotonic clock
        self.tick = 0.0  # how far it moves each time the client reads it
        self.client = QuickBooksClient(
            base_url=BASE_URL,
            token_url=TOKEN_URL,
            client_id="app",
            client_secret="secret",
            tokens=self.store,
            limits=limits or Limits(),
            retry=retry,
            connector=self.fake.connector,
            sleep=self._sleep,
            clock=self._clock,
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def _clock(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
async def qb() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.client.aclose()


def ok(entity: str, value: object) -> Answer:
    return Answer(200, json={entity: value, "time": "2026-11-25T08:00:00-08:00"})


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# Reads and queries


async def test_read_sends_token_minorversion_and_returns_the_customer(qb: Harness) -> None:
    qb.fake.script(ok("Customer", customer("58", "3")))

    found = await qb.client.read_customer(REALM, "58")

    assert found["SyncToken"] == "3"
    (request,) = qb.fake.api_requests
    assert request.url.path == f"/v3/company/{REALM}/customer/58"
    assert request.url.params["minorversion"] == "75"
    assert request.headers["Authorization"] == "Bearer at-1"
    assert request.headers["Accept"] == "application/json"


async def test_query_pages_until_a_short_page(qb: Harness) -> None:
    rows = [customer(str(n)) for n in range(1, 6)]

    async def pages(request: SeenRequest) -> Answer:
        words = query_of(request).split()
        start = int(words[words.index("STARTPOSITION") + 1])
        size = int(words[words.index("MAXRESULTS") + 1])
        page = rows[start - 1 : start - 1 + size]
        return Answer(200, json={"QueryResponse": {"Customer": page} if page else {}})

    qb.fake.api = pages
    got = [row["Id"] async for row in qb.client.query(REALM, "select * from Customer", page_size=2)]

    assert got == ["1", "2", "3", "4", "5"]
    assert [query_of(r) for r in qb.fake.api_requests] == [
        "select * from Customer STARTPOSITION 1 MAXRESULTS 2",
        "select * from Customer STARTPOSITION 3 MAXRESULTS 2",
        "select * from Customer STARTPOSITION 5 MAXRESULTS 2",
    ]


async def test_a_full_page_of_1000_asks_for_the_next(qb: Harness) -> None:
    full = {"QueryResponse": {"Item": [{"Id": str(n)} for n in range(1000)]}}
    qb.fake.script(Answer(200, json=full), Answer(200, json={"QueryResponse": {}}))

    items = await qb.client.items(REALM)

    assert len(items) == 1000
    assert query_of(qb.fake.api_requests[1]).endswith("STARTPOSITION 1001 MAXRESULTS 1000")


async def test_query_refuses_a_statement_that_pages_itself(qb: Harness) -> None:
    with pytest.raises(ValueError, match="pages itself"):
        _ = [row async for row in qb.client.query(REALM, "select * from Item MAXRESULTS 5")]


@pytest.mark.parametrize(
    ("include_inactive", "expected"),
    [
        (False, "select * from Customer STARTPOSITION 1 MAXRESULTS 1000"),
        (
            True,
            "select * from Customer where Active IN (true, false) STARTPOSITION 1 MAXRESULTS 1000",
        ),
    ],
)
async def test_customers_include_inactive_only_when_asked(
    qb: Harness, include_inactive: bool, expected: str
) -> None:
    qb.fake.script(Answer(200, json={"QueryResponse": {"Customer": [customer("1")]}}))

    got = [c async for c in qb.client.customers(REALM, include_inactive=include_inactive)]

    assert [c["Id"] for c in got] == ["1"]
    assert query_of(qb.fake.api_requests[0]) == expected


async def test_count_customers_reads_total_count(qb: Harness) -> None:
    qb.fake.script(Answer(200, json={"QueryResponse": {"totalCount": 31}}))

    assert await qb.client.count_customers(REALM, include_inactive=True) == 31
    assert query_of(qb.fake.api_requests[0]) == (
        "select count(*) from Customer where Active IN (true, false)"
    )


async def test_find_by_name_quotes_the_name_and_keeps_exact_casefold_matches(qb: Harness) -> None:
    qb.fake.script(
        Answer(
            200,
            json={
                "QueryResponse": {
                    "Customer": [
                        {"Id": "1", "DisplayName": "O'BRIEN TAX"},
                        {"Id": "2", "DisplayName": "O'Brien Tax LLC"},
                    ]
                }
            },
        )
    )

    found = await qb.client.find_customers_by_name(REALM, "o'brien tax")

    assert [c["Id"] for c in found] == ["1"]
    assert query_of(qb.fake.api_requests[0]).startswith(
        "select * from Customer where DisplayName = 'o\\'brien tax' STARTPOSITION 1"
    )


def test_quote_escapes_quotes_and_backslashes() -> None:
    assert quote("a'b\\c") == "'a\\'b\\\\c'"


async def test_invoices_of_customers_query_by_customer_ref_a_hundred_ids_at_a_time(
    qb: Harness,
) -> None:
    ids = [str(n) for n in range(1, 151)]
    qb.fake.script(
        Answer(200, json={"QueryResponse": {"Invoice": [{"Id": "130"}]}}),
        Answer(200, json={"QueryResponse": {"Invoice": [{"Id": "131"}]}}),
    )

    invoices = await qb.client.invoices_of_customers(REALM, ids)

    assert invoices == [{"Id": "130"}, {"Id": "131"}]
    first, second = (query_of(r) for r in qb.fake.api_requests)
    assert first.startswith("select * from Invoice where CustomerRef IN ('1', '2', ")
    assert "'100') STARTPOSITION 1 MAXRESULTS 1000" in first
    assert second.startswith("select * from Invoice where CustomerRef IN ('101', ")
    assert second.endswith("'150') STARTPOSITION 1 MAXRESULTS 1000")


async def test_sub_customers_are_found_by_qualified_name_and_kept_only_below_it(
    qb: Harness,
) -> None:
    below = {"Id": "7", "FullyQualifiedName": "50% Off's:Job"}
    elsewhere = {"Id": "8", "FullyQualifiedName": "50X Off's:Job"}  # LIKE's % matched it
    qb.fake.script(Answer(200, json={"QueryResponse": {"Customer": [below, elsewhere]}}))

    found = await qb.client.sub_customers(REALM, "50% Off's")

    assert found == [below]
    assert query_of(qb.fake.api_requests[0]).startswith(
        "select * from Customer where Active IN (true, false)"
        " and FullyQualifiedName LIKE '50% Off\\'s:%' STARTPOSITION 1"
    )


async def test_cdc_collects_customers_and_the_server_time(qb: Harness) -> None:
    qb.fake.script(
        Answer(
            200,
            json={
                "CDCResponse": [
                    {
                        "QueryResponse": [
                            {"Customer": [customer("1")], "startPosition": 1},
                            {"Customer": [{"Id": "2", "status": "Deleted"}]},
                        ]
                    }
                ],
                "time": "2026-11-25T08:00:05.123-08:00",
            },
        )
    )
    since = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

    changes = await qb.client.customer_changes(REALM, since)

    assert [c["Id"] for c in changes.customers] == ["1", "2"]
    assert changes.time == datetime.fromisoformat("2026-11-25T08:00:05.123-08:00")
    assert not changes.maybe_truncated
    params = qb.fake.api_requests[0].url.params
    assert params["entities"] == "Customer"
    assert datetime.fromisoformat(params["changedSince"]) == since


async def test_cdc_wants_an_aware_time(qb: Harness) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await qb.client.customer_changes(REALM, datetime(2026, 1, 1))


# Writes


async def test_create_sends_the_request_id_and_returns_the_customer(qb: Harness) -> None:
    qb.fake.script(ok("Customer", customer("77")))

    created = await qb.client.create_customer(REALM, {"DisplayName": "Acme"}, request_id="req-1")

    assert created["Id"] == "77"
    (request,) = qb.fake.api_requests
    assert request.method == "POST"
    assert request.url.path.endswith("/customer")
    assert request.url.params["requestid"] == "req-1"
    assert body_of(request) == {"DisplayName": "Acme"}


async def test_a_write_is_retried_after_a_dropped_answer_with_the_same_request_id(
    qb: Harness,
) -> None:
    qb.fake.script(
        Dropped("Server disconnected without sending a response."),
        Dropped("timed out"),
        ok("Customer", customer("77")),
    )

    created = await qb.client.create_customer(REALM, {"DisplayName": "Acme"}, request_id="req-9")

    assert created["Id"] == "77"
    assert [r.url.params["requestid"] for r in qb.fake.api_requests] == ["req-9"] * 3
    assert len(qb.sleeps) == 2


async def test_sparse_update_sends_id_sync_token_and_only_the_changes(qb: Harness) -> None:
    qb.fake.script(ok("Customer", customer("58", "4")))

    updated = await qb.client.update_customer(
        REALM, "58", "3", {"PrimaryPhone": {"FreeFormNumber": "1"}}, request_id="u-1"
    )

    assert updated["SyncToken"] == "4"
    assert body_of(qb.fake.api_requests[0]) == {
        "Id": "58",
        "SyncToken": "3",
        "sparse": True,
        "PrimaryPhone": {"FreeFormNumber": "1"},
    }


async def test_update_without_a_sync_token_reads_it_first(qb: Harness) -> None:
    qb.fake.script(ok("Customer", customer("58", "6")), ok("Customer", customer("58", "7")))

    await qb.client.update_customer(REALM, "58", None, {"WebAddr": {"URI": "x"}}, request_id="u")

    read, write = qb.fake.api_requests
    assert read.method == "GET"
    assert body_of(write)["SyncToken"] == "6"
    assert write.url.params["requestid"] == "u"


async def test_stale_object_rereads_and_reapplies_the_same_change(qb: Harness) -> None:
    changes = {"BillAddr": {"Line1": "1 Main St"}}
    qb.fake.script(
        fault("5010", "Stale Object Error", "You and someone else edited"),
        ok("Customer", customer("58", "9")),
        ok("Customer", customer("58", "10")),
    )

    updated = await qb.client.update_customer(REALM, "58", "3", changes, request_id="u-5")

    assert updated["SyncToken"] == "10"
    first, read, second = qb.fake.api_requests
    assert read.method == "GET" and read.url.path.endswith("/customer/58")
    assert body_of(second) == {**changes, "Id": "58", "SyncToken": "9", "sparse": True}
    # The re-applied write is a new body, so it has its own (derived, stable) request id.
    assert first.url.params["requestid"] == "u-5"
    assert second.url.params["requestid"] == reapplied_request_id("u-5", 1)
    assert reapplied_request_id("u-5", 1) == reapplied_request_id("u-5", 1)


async def test_stale_object_retries_are_bounded(qb: Harness) -> None:
    async def always_stale(request: SeenRequest) -> Answer:
        if request.method == "GET":
            return ok("Customer", customer("58", "1"))
        return fault("5010", "Stale Object Error")

    qb.fake.api = always_stale

    with pytest.raises(StaleObjectError) as raised:
        await qb.client.update_customer(REALM, "58", "0", {"Active": True}, request_id="u")

    posts = [r for r in qb.fake.api_requests if r.method == "POST"]
    assert len(posts) == STALE_OBJECT_ATTEMPTS
    assert raised.value.code == "5010"


async def test_deactivate_is_a_sparse_update_setting_active_false(qb: Harness) -> None:
    qb.fake.script(ok("Customer", customer("58", "2")), ok("Customer", customer("58", "3")))

    await qb.client.deactivate_customer(REALM, "58", request_id="d-1")

    assert body_of(qb.fake.api_requests[1]) == {
        "Active": False,
        "Id": "58",
        "SyncToken": "2",
        "sparse": True,
    }


async def test_create_invoice(qb: Harness) -> None:
    qb.fake.script(ok("Invoice", {"Id": "130", "CustomerRef": {"value": "58"}}))

    invoice = await qb.client.create_invoice(
        REALM, {"CustomerRef": {"value": "58"}, "Line": []}, request_id="inv-1"
    )

    assert invoice["Id"] == "130"
    assert qb.fake.api_requests[0].url.params["requestid"] == "inv-1"


async def test_batch_posts_items_and_counts_each_against_the_window() -> None:
    harness = Harness(limits=Limits(max_per_window=100, window_seconds=60))
    items = [{"bId": f"b{n}", "operation": "update", "Customer": {"Id": str(n)}} for n in range(30)]
    harness.fake.script(
        Answer(200, json={"BatchItemResponse": [{"bId": "b0", "Customer": {"Id": "0"}}]})
    )

    answers = await harness.client.batch(REALM, items, request_id="batch-1")

    assert answers == [{"bId": "b0", "Customer": {"Id": "0"}}]
    assert body_of(harness.fake.api_requests[0]) == {"BatchItemRequest": items}
    assert harness.client.limiters.for_realm(REALM).occupied() == 30
    with pytest.raises(ValueError, match=r"1\.\.30"):
        await harness.client.batch(REALM, items + items[:1])
    await harness.client.aclose()


# Errors


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        (fault("6240", "Duplicate Name Exists Error", "The name supplied already exists"),
         DuplicateNameError, "6240"),
        (fault("610", "Object Not Found", "Another user has deleted this"), ObjectNotFoundError,
         "610"),
        (fault("2010", "Request has invalid or unsupported property"),
         QuickBooksValidationError, "2010"),
        (Answer(403, json={"Fault": {"Error": [{"code": "003100"}], "type": "Auth"}}),
         QuickBooksValidationError, "003100"),
    ],
)  # fmt: skip
async def test_client_errors_are_typed_and_never_retried(
    qb: Harness, answer: Answer, error: type[Exception], code: str
) -> None:
    qb.fake.script(answer)

    with pytest.raises(error) as raised:
        await qb.client.create_customer(REALM, {"DisplayName": "Acme"}, request_id="c")

    assert len(qb.fake.api_requests) == 1
    assert qb.sleeps == []
    text = str(raised.value)
    assert REALM in text and "create_customer" in text and code in text


async def test_duplicate_name_carries_code_message_and_detail(qb: Harness) -> None:
    qb.fake.script(fault("6240", "Duplicate Name Exists Error", "The name supplied exists: Id=5"))

    with pytest.raises(DuplicateNameError) as raised:
        await qb.client.create_customer(REALM, {"DisplayName": "Acme"}, request_id="c")

    assert raised.value.code == "6240"
    assert raised.value.message == "Duplicate Name Exists Error"
    assert raised.value.detail == "The name supplied exists: Id=5"
    assert raised.value.realm_id == REALM
    assert raised.value.operation == "create_customer"
    assert raised.value.status == 400


async def test_a_fault_in_a_200_is_still_an_error(qb: Harness) -> None:
    qb.fake.script(fault("610", "Object Not Found", status=200))

    with pytest.raises(ObjectNotFoundError):
        await qb.client.read_customer(REALM, "999")


async def test_429_is_retried_after_retry_after(qb: Harness) -> None:
    throttled = fault("003001", "message=ThrottleExceeded", status=429)
    throttled.headers["Retry-After"] = "7"
    before = counter("qbsync_quickbooks_throttled_total", operation="read_customer")
    qb.fake.script(throttled, ok("Customer", customer("58")))

    await qb.client.read_customer(REALM, "58")

    assert len(qb.sleeps) == 1 and qb.sleeps[0] >= 7
    assert counter("qbsync_quickbooks_throttled_total", operation="read_customer") == before + 1


async def test_throttling_that_never_ends_becomes_throttled_error(qb: Harness) -> None:
    async def throttled(request: SeenRequest) -> Answer:
        return fault("003001", "message=ThrottleExceeded", status=429)

    qb.fake.api = throttled

    with pytest.raises(ThrottledError) as raised:
        await qb.client.read_customer(REALM, "58")

    assert len(qb.fake.api_requests) == RETRY.throttled_attempts
    assert raised.value.code == "003001"


async def test_server_errors_are_retried_with_backoff_then_raised(qb: Harness) -> None:
    before = counter(
        "qbsync_quickbooks_retries_total", operation="read_customer", reason="server_error"
    )
    qb.fake.script(Answer(503, text="<html>down</html>"), ok("Customer", customer("1")))
    await qb.client.read_customer(REALM, "1")
    assert (
        counter("qbsync_quickbooks_retries_total", operation="read_customer", reason="server_error")
        == before + 1
    )

    async def broken(request: SeenRequest) -> Answer:
        return Answer(500, json={"Fault": {"Error": [{"code": "10000"}]}})

    qb.fake.api = broken
    with pytest.raises(ServerError):
        await qb.client.read_customer(REALM, "1")
    assert all(0 <= delay <= RETRY.max_delay for delay in qb.sleeps)


async def test_no_answer_after_every_retry_is_a_transport_error(qb: Harness) -> None:
    async def refused(request: SeenRequest) -> Answer:
        raise Dropped("connection refused")

    qb.fake.api = refused

    with pytest.raises(TransportError) as raised:
        await qb.client.read_customer(REALM, "1")

    assert "ServerDisconnectedError" in str(raised.value)
    assert len(qb.sleeps) == RETRY.attempts - 1  # the client's own attempts
    # aiohttp itself sends an idempotent request once more when a kept-alive connection
    # turns out closed, so QuickBooks may see up to two requests per attempt of a read.
    assert RETRY.attempts <= len(qb.fake.api_requests) <= 2 * RETRY.attempts


# OAuth


async def test_access_tokens_are_cached_between_calls(qb: Harness) -> None:
    async def answer(request: SeenRequest) -> Answer:
        return ok("Customer", customer("1"))

    qb.fake.api = answer
    for _ in range(5):
        await qb.client.read_customer(REALM, "1")

    assert qb.fake.token_requests == 1


async def test_concurrent_first_calls_refresh_once(qb: Harness) -> None:
    async def answer(request: SeenRequest) -> Answer:
        return ok("Customer", customer("1"))

    qb.fake.api = answer
    await asyncio.gather(*(qb.client.read_customer(REALM, "1") for _ in range(20)))

    assert qb.fake.token_requests == 1


async def test_a_401_refreshes_once_and_retries(qb: Harness) -> None:
    qb.fake.script(ok("Customer", customer("1")), ok("Customer", customer("1")))
    await qb.client.read_customer(REALM, "1")
    qb.fake.expire_access_tokens()

    await qb.client.read_customer(REALM, "1")

    assert qb.fake.token_requests == 2
    assert qb.fake.api_requests[-1].headers["Authorization"] == "Bearer at-2"
    assert (await qb.store.load(REALM)).refresh_token == "rt-2"


async def test_a_token_another_process_stored_and_refused_too_is_refreshed_again(
    qb: Harness,
) -> None:
    """Found by make chaos: every access token of a realm ended at once; the first refresh
    handed over the token another process had just stored, dead as well, and its 401 marked
    the firm needs_reconnect. The next refresh is this process's own, and it works."""
    qb.fake.script(ok("Customer", customer("1")), ok("Customer", customer("1")))
    await qb.client.read_customer(REALM, "1")
    qb.fake.expire_access_tokens()
    # Another process refreshed just before the tokens ended: its token is stored, and dead.
    dead = StoredTokens("rt-1", "at-dead", datetime.now(UTC) + timedelta(minutes=30))
    await qb.store.save(REALM, dead)

    await qb.client.read_customer(REALM, "1")

    assert qb.store.reconnect_reasons == {}
    assert qb.fake.api_requests[-1].headers["Authorization"] == "Bearer at-2"


async def test_a_401_after_refreshing_twice_is_an_authentication_error(qb: Harness) -> None:
    async def never_valid(request: SeenRequest) -> Answer:
        qb.fake.expire_access_tokens()
        return Answer(401, json={"fault": {"error": [{"code": "3200"}]}})

    qb.fake.script()
    qb.fake.access_tokens.add("at-x")
    qb.fake.api = never_valid

    with pytest.raises(AuthenticationError) as raised:
        await qb.client.read_customer(REALM, "1")

    assert raised.value.code == "3200"
    assert qb.fake.token_requests == 3  # the first token, then two refreshes of its own
    assert REALM in qb.store.reconnect_reasons  # a person must reconnect the firm
    with pytest.raises(NeedsReconnectError):
        await qb.client.read_customer(REALM, "1")
    assert qb.fake.token_requests == 3  # the marked connection is not tried again


async def test_tokens_other_processes_stored_that_ended_too_never_mark_the_firm(
    qb: Harness,
) -> None:
    """Found by make chaos (again, with six processes): every access token of a realm ended
    at once, and two handovers in a row of tokens other processes had stored, dead as well,
    spent the two refreshes and marked the firm needs_reconnect."""
    qb.fake.script(ok("Customer", customer("1")))
    await qb.client.read_customer(REALM, "1")
    qb.fake.expire_access_tokens()
    others = iter(["at-other-1", "at-other-2", "at-other-3"])
    rotate = qb.store.rotate

    async def another_process_refreshed_first(
        realm_id: str, renew: Callable[[StoredTokens], Awaitable[StoredTokens]]
    ) -> StoredTokens:
        if (other := next(others, None)) is not None:  # just before the tokens ended
            expires = datetime.now(UTC) + timedelta(minutes=30)
            await qb.store.save(realm_id, StoredTokens("rt-1", other, expires))
        return await rotate(realm_id, renew)

    qb.store.rotate = another_process_refreshed_first  # type: ignore[method-assign]

    async def answer(request: SeenRequest) -> Answer:
        return ok("Customer", customer("1"))

    qb.fake.api = answer

    await qb.client.read_customer(REALM, "1")

    assert qb.store.reconnect_reasons == {}
    assert qb.fake.api_requests[-1].headers["Authorization"] == "Bearer at-2"


async def test_a_refreshed_token_that_ended_while_its_call_waited_is_refreshed_again(
    qb: Harness,
) -> None:
    """Found by make chaos: a realm's access tokens were ended again while the retried call
    waited for the realm's quota, and the 401 of a token refreshed long before it was sent
    marked the firm needs_reconnect."""
    qb.fake.script(ok("Customer", customer("1")))
    await qb.client.read_customer(REALM, "1")
    ended = 0

    async def ended_while_waiting(request: SeenRequest) -> Answer:
        nonlocal ended
        if ended < 3:  # each token ends while its call waits
            ended += 1
            qb.fake.expire_access_tokens()
            return Answer(401, json={"fault": {"error": [{"code": "3200"}]}})
        return ok("Customer", customer("1"))

    qb.fake.api = ended_while_waiting
    qb.tick = 30.0  # between a refresh and its call's sending, the wait for the quota

    await qb.client.read_customer(REALM, "1")

    assert qb.store.reconnect_reasons == {}
    assert qb.fake.token_requests == 4  # the first token, then three refreshes


async def test_tokens_that_keep_ending_before_their_call_is_sent_are_an_outage(
    qb: Harness,
) -> None:
    async def always_ended(request: SeenRequest) -> Answer:
        qb.fake.expire_access_tokens()
        return Answer(401, json={"fault": {"error": [{"code": "3200"}]}})

    qb.fake.api = always_ended
    qb.tick = 30.0

    with pytest.raises(QuickBooksUnavailable):
        await qb.client.read_customer(REALM, "1")

    assert qb.store.reconnect_reasons == {}  # not the firm's doing: tried again later
    assert qb.fake.token_requests == 6  # the first token, then five refreshes


async def test_invalid_grant_marks_the_connection_and_stops(qb: Harness) -> None:
    qb.fake.refresh_tokens.clear()

    with pytest.raises(NeedsReconnectError) as raised:
        await qb.client.read_customer(REALM, "1")

    assert raised.value.code == "invalid_grant"
    assert REALM in qb.store.reconnect_reasons
    with pytest.raises(NeedsReconnectError):
        await qb.client.read_customer(REALM, "1")
    assert qb.fake.token_requests == 1  # the marked connection is not tried again


async def test_an_unknown_realm_is_not_connected(qb: Harness) -> None:
    with pytest.raises(NotConnectedError):
        await qb.client.read_customer("other-realm", "1")


async def test_a_refused_client_is_an_authentication_error(qb: Harness) -> None:
    qb.fake.token_answers.append(Answer(401, json={"error": "invalid_client"}))

    with pytest.raises(AuthenticationError) as raised:
        await qb.client.read_customer(REALM, "1")

    assert raised.value.code == "invalid_client"
    assert qb.store.reconnect_reasons == {}


async def test_token_endpoint_outages_are_retried(qb: Harness) -> None:
    qb.fake.token_answers.append(Answer(503, text="unavailable"))
    qb.fake.script(ok("Customer", customer("1")))

    await qb.client.read_customer(REALM, "1")

    assert qb.fake.token_requests == 2


async def test_revoke_sends_the_refresh_token_and_never_raises(qb: Harness) -> None:
    await qb.client.revoke(REALM)
    assert qb.fake.revoked == ["rt-0"]

    await qb.client.revoke("not-connected")  # logged, not raised


# Limits


async def test_fifty_coroutines_never_exceed_the_in_flight_limit() -> None:
    harness = Harness(limits=Limits(max_in_flight=10))
    in_flight = 0
    most = 0
    release = asyncio.Event()

    async def slow(request: SeenRequest) -> Answer:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if most == 10:
            release.set()
        await release.wait()
        in_flight -= 1
        return ok("Customer", customer("1"))

    harness.fake.api = slow
    await asyncio.gather(*(harness.client.read_customer(REALM, "1") for _ in range(50)))

    assert most == 10
    assert len(harness.fake.api_requests) == 50
    await harness.client.aclose()


async def test_requests_metric_counts_by_operation_and_status(qb: Harness) -> None:
    before = counter("qbsync_quickbooks_requests_total", operation="read_customer", status="200")
    qb.fake.script(ok("Customer", customer("1")))

    await qb.client.read_customer(REALM, "1")

    after = counter("qbsync_quickbooks_requests_total", operation="read_customer", status="200")
    assert after == before + 1


async def test_calls_per_realm_tell_metered_reads_from_writes(qb: Harness) -> None:
    def calls(metered: str) -> float:
        return counter("qbsync_quickbooks_realm_calls_total", realm_id=REALM, metered=metered)

    reads, writes = calls("true"), calls("false")
    qb.fake.script(ok("Customer", customer("1")), ok("Customer", customer("2")))

    await qb.client.read_customer(REALM, "1")
    await qb.client.create_customer(REALM, {"DisplayName": "Two"}, request_id="r-2")

    assert (calls("true"), calls("false")) == (reads + 1, writes + 1)


async def test_from_settings_takes_urls_client_limits_and_minor_version() -> None:
    settings = Settings(
        QBO_BASE_URL=BASE_URL,
        QBO_TOKEN_URL=TOKEN_URL,
        QBO_CLIENT_ID="app",
        QBO_CLIENT_SECRET="secret",
        QBO_MINOR_VERSION=70,
        QBO_MAX_REQUESTS_PER_WINDOW=100,
        QBO_RATE_WINDOW_SECONDS=6,
        QBO_MAX_IN_FLIGHT=4,
    )
    async with QuickBooksClient.from_settings(settings, InMemoryTokenStore()) as client:
        assert client.limits == Limits(max_per_window=100, window_seconds=6.0, max_in_flight=4)
        assert client.minor_version == 70
        assert client.base_url == BASE_URL


def test_from_settings_names_a_missing_oauth_client() -> None:
    with pytest.raises(ConfigurationError, match="QBO_CLIENT_ID"):
        QuickBooksClient.from_settings(Settings(QBO_CLIENT_ID=None), InMemoryTokenStore())
