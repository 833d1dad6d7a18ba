"""Importing a large realm fast: the client asks for customer pages ahead of the one being
read, and the emulator pages an import's query without testing every row it skips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qbsync.emulator import query
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.errors import QuickBooksValidationError
from qbsync.quickbooks.limiter import Limits
from qbsync.quickbooks.tokens import InMemoryTokenStore
from tests.support.fake_quickbooks import (
    BASE_URL,
    REALM,
    TOKEN_URL,
    Answer,
    FakeQuickBooks,
    SeenRequest,
    query_of,
)


class PagedRealm:
    """`total` customers served a page at a time; counts the pages in flight at once."""

    def __init__(self, total: int, delay: float = 0.01) -> None:
        self.rows = [{"Id": str(n), "DisplayName": f"C{n}"} for n in range(1, total + 1)]
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.positions: list[int] = []

    async def answer(self, request: SeenRequest) -> Answer:
        words = query_of(request).split()
        start = int(words[words.index("STARTPOSITION") + 1])
        size = int(words[words.index("MAXRESULTS") + 1])
        self.positions.append(start)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)  # lets the next requests overlap this one
        finally:
            self.in_flight -= 1
        page = self.rows[start - 1 : start - 1 + size]
        return Answer(200, json={"QueryResponse": {"Customer": page} if page else {}})


def pages_left_behind() -> list[asyncio.Task[object]]:
    """The client's page requests still running. (The stand-in server's count of requests
    in flight can't tell: a server finishes a request whose client went away.)"""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "query.<locals>.page" in task.get_coro().__qualname__  # type: ignore[union-attr]
    ]


@pytest.fixture
async def client() -> AsyncIterator[tuple[QuickBooksClient, FakeQuickBooks]]:
    fake = FakeQuickBooks()
    made = QuickBooksClient(
        base_url=BASE_URL,
        token_url=TOKEN_URL,
        client_id="app",
        client_secret="secret",
        tokens=InMemoryTokenStore({REALM: "rt-0"}),
        limits=Limits(max_per_window=10_000, max_in_flight=10),
        connector=fake.connector,
    )
    yield made, fake
    await made.aclose()


async def test_pages_ahead_overlap_and_rows_keep_their_order(
    client: tuple[QuickBooksClient, FakeQuickBooks],
) -> None:
    qb, fake = client
    realm = PagedRealm(total=95)
    fake.api = realm.answer

    got = [c["Id"] async for c in qb.customers(REALM, page_size=10, pages_ahead=3)]

    assert got == [str(n) for n in range(1, 96)]
    assert realm.most_in_flight == 4  # the page being read and three ahead
    # Ten pages hold the rows; the last is short, and at most three were asked past it.
    assert sorted(realm.positions)[:10] == list(range(1, 100, 10))
    assert len(realm.positions) <= 13


async def test_pages_asked_past_the_end_hold_their_slots_until_answered(
    client: tuple[QuickBooksClient, FakeQuickBooks],
) -> None:
    # QuickBooks counts a request in flight until it has answered it, even when its client
    # stopped waiting: a slot given back sooner lets another call in over the limit (the
    # 429s bench-quota saw at the end of an import).
    qb, fake = client
    realm = PagedRealm(total=45, delay=0.05)
    fake.api = realm.answer

    got = []
    async for customer in qb.customers(REALM, page_size=10, pages_ahead=3):
        got.append(customer["Id"])
        await asyncio.sleep(0.001)  # a reader with work to do: pages ahead are sent meanwhile

    assert len(got) == 45
    assert len(realm.positions) == 8  # three pages asked past the last one
    assert realm.in_flight == 0  # and answered before the import went on


async def test_a_first_page_that_is_not_full_asks_for_nothing_more(
    client: tuple[QuickBooksClient, FakeQuickBooks],
) -> None:
    qb, fake = client
    realm = PagedRealm(total=7)
    fake.api = realm.answer

    got = [c["Id"] async for c in qb.customers(REALM, page_size=10, pages_ahead=3)]

    assert len(got) == 7
    assert realm.positions == [1]  # a small realm costs one request, as before


async def test_without_pages_ahead_one_page_at_a_time(
    client: tuple[QuickBooksClient, FakeQuickBooks],
) -> None:
    qb, fake = client
    realm = PagedRealm(total=30)
    fake.api = realm.answer

    got = [c async for c in qb.customers(REALM, page_size=10, pages_ahead=0)]

    assert len(got) == 30
    assert realm.positions == [1, 11, 21, 31]
    assert realm.most_in_flight == 1


async def test_a_failed_page_fails_the_import_and_leaves_nothing_running(
    client: tuple[QuickBooksClient, FakeQuickBooks],
) -> None:
    qb, fake = client
    realm = PagedRealm(total=100)

    async def third_page_refused(request: SeenRequest) -> Answer:
        if "STARTPOSITION 21 " in query_of(request):
            return Answer(400, json={"Fault": {"Error": [{"code": "4000"}]}})
        return await realm.answer(request)

    fake.api = third_page_refused
    read: list[str] = []
    with pytest.raises(QuickBooksValidationError):
        async for c in qb.customers(REALM, page_size=10, pages_ahead=3):
            read.append(c["Id"])

    assert read == [str(n) for n in range(1, 21)]
    assert pages_left_behind() == []  # pages requested ahead were cancelled


async def test_a_reader_that_stops_early_cancels_the_pages_ahead(
    client: tuple[QuickBooksClient, FakeQuickBooks],
) -> None:
    qb, fake = client
    realm = PagedRealm(total=100, delay=0.05)
    fake.api = realm.answer

    pages = qb.customers(REALM, page_size=10, pages_ahead=3)
    first = [c["Id"] async for c in _take(pages, 15)]
    await pages.aclose()  # type: ignore[attr-defined]

    assert first == [str(n) for n in range(1, 16)]
    assert pages_left_behind() == []


async def test_pages_ahead_must_not_be_negative(
    client: tuple[QuickBooksClient, FakeQuickBooks],
) -> None:
    qb, _ = client
    with pytest.raises(ValueError, match="pages_ahead"):
        _ = [c async for c in qb.customers(REALM, pages_ahead=-1)]


async def _take(rows: AsyncIterator[dict[str, Any]], count: int) -> AsyncIterator[dict[str, Any]]:
    taken = 0
    async for row in rows:
        yield row
        taken += 1
        if taken == count:
            return


# -- the emulator's side ---------------------------------------------------------------


def _rows(total: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in range(1, total + 1):
        row: dict[str, Any] = {"Id": str(n), "DisplayName": f"C{n:04d}"}
        if n % 3 == 0:
            row["Active"] = False
        elif n % 3 == 1:
            row["Active"] = True  # and n % 3 == 2 leaves Active out: it reads as true
        rows.append(row)
    return rows


def _page(text: str, rows: list[dict[str, Any]]) -> list[str]:
    return [row["Id"] for row in query.evaluate(query.parse(text), rows).rows]


@pytest.mark.parametrize(
    ("condition", "kept"),
    [
        ("where Active IN (true, false)", lambda n: True),
        ("where Active IN (false, true)", lambda n: True),
        ("where Active = true", lambda n: n % 3 != 0),
        ("where Active = false", lambda n: n % 3 == 0),
        ("", lambda n: n % 3 != 0),  # inactive customers are hidden by default
        ("where Active IN (true, false) AND DisplayName > 'C0050'", lambda n: n > 50),
    ],
)
def test_emulator_pages_hold_exactly_the_rows_the_query_selects(condition: str, kept: Any) -> None:
    rows = _rows(120)
    selected = [str(n) for n in range(1, 121) if kept(n)]
    for start in (1, 11, 41, 91):
        text = f"select * from Customer {condition} STARTPOSITION {start} MAXRESULTS 10"
        assert _page(text, rows) == selected[start - 1 : start - 1 + 10]


def test_emulator_counts_every_customer_when_asked_for_active_and_inactive() -> None:
    rows = _rows(120)
    text = "select count(*) from Customer where Active IN (true, false)"
    assert query.evaluate(query.parse(text), rows).total_count == 120
