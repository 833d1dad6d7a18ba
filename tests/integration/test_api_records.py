"""GET /records, /integration's counts, /suggestions and /audit on the real database,
through the running API."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from qbsync.db.links import AuditEntry, record_audit
from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount
from tests.integration.conftest import ApiSystem
from tests.support.api import SeededFirm, bearer, is_problem, seed_firm

pytestmark = pytest.mark.integration

# Names that sort differently by str.casefold() + code point than by a locale's collation,
# with quotes, SQL, emoji and non-Latin scripts.
ACCOUNT_NAMES = {
    "a-01": "Zeta Partners",
    "a-02": "alpha accounting",
    "a-03": "ALPHA Holdings",
    "a-04": "Ärzte GmbH",
    "a-05": "O'Brien & Sons",
    "a-06": "Robert'); DROP TABLE accounts;--",
    "a-07": "Café ☕ Ltd",
    "a-08": "東京商事",
    "a-09": "Straße Bau",
    "a-10": "Dup Name",
    "a-11": "dup name",
    "a-12": "Linked One",
    "a-13": "Needs Care",
}
CUSTOMERS: list[dict[str, Any]] = [
    {"customer_id": "1", "display_name": "Linked One Inc"},
    {"customer_id": "2", "display_name": "DUP NAME"},
    {"customer_id": "3", "display_name": "Alpha Accounting LLC"},
    {"customer_id": "4", "display_name": "Alpha Job", "parent_id": "3"},
    {"customer_id": "5", "display_name": "Gone Co", "active": False},
    {"customer_id": "6", "display_name": "strasse bau"},
    {"customer_id": "7", "display_name": "Москва Трейд"},
]


async def _seed(pool: Pool, api: ApiSystem) -> SeededFirm:
    firm = await seed_firm(
        pool,
        api.system.env["QBSYNC_SECRET_KEY"],
        accounts=[
            LiscioAccount(
                account_id,
                name,
                contacts=[{"id": "c-1", "first_name": "Ada", "last_name": "L", "email": None}]
                if account_id == "a-12"
                else [],
            )
            for account_id, name in ACCOUNT_NAMES.items()
        ],
        customers=CUSTOMERS,
        links=[("a-12", "1")],
    )
    await pool.execute(
        "UPDATE accounts SET attention = 'QuickBooks refused the name'"
        " WHERE firm_id = $1 AND account_id = 'a-13'",
        firm.firm_id,
    )
    return firm


def _key(item: dict[str, Any]) -> tuple[str, str, str]:
    account, customer = item["account"], item["customer"]
    name = account["name"] if account else customer["display_name"]
    return (
        name.casefold(),
        account["id"] if account else "",
        customer["id"] if customer else "",
    )


async def _all_pages(api: ApiSystem, firm: SeededFirm, limit: int, **params: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        query = {"limit": str(limit), **params} | ({"cursor": cursor} if cursor else {})
        response = await api.client.get(
            f"/v1/firms/{firm.firm_id}/records", params=query, headers=bearer(firm.firm_id, "staff")
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_records_are_listed_in_casefold_code_point_order_page_by_page(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _seed(pool, api_system)
    whole = await _all_pages(api_system, firm, limit=500)
    keys = [_key(item) for item in whole]
    assert keys == sorted(keys)
    # 13 accounts (one linked) + 7 customers - the linked one - the inactive one = 18 items
    assert len(whole) == 18
    for limit in (1, 2, 5):
        assert await _all_pages(api_system, firm, limit=limit) == whole
    pair = next(item for item in whole if item["link"])
    assert pair["account"]["id"] == "a-12" and pair["customer"]["id"] == "1"
    assert pair["link"]["how"] == "auto" and pair["link"]["realm_id"] == firm.realm_id
    assert pair["account"]["contacts"] == [
        {"id": "c-1", "first_name": "Ada", "last_name": "L", "email": None}
    ]
    assert all(
        set(item) == {"account", "customer", "link", "attention", "liscio_create"} for item in whole
    )


async def test_every_count_is_what_records_lists_under_that_filter(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _seed(pool, api_system)
    response = await api_system.client.get(
        f"/v1/firms/{firm.firm_id}/integration", headers=bearer(firm.firm_id, "staff")
    )
    assert response.status_code == 200, response.text
    overview = response.json()
    assert overview["connection"] == {"realm_id": firm.realm_id, "status": "connected"}
    assert overview["last_run"] is None
    counts = overview["counts"]
    assert counts == {
        "linked": 1,
        "unlinked_accounts": 12,
        # 2 DUP NAME, 3 Alpha Accounting LLC, 4 Alpha Job (a sub-customer), 6, 7
        "unlinked_customers": 5,
        # the accounts Dup Name / dup name and the customer DUP NAME
        "ambiguous": 3,
        "attention": 1,
    }
    for name, count in counts.items():
        listed = await _all_pages(api_system, firm, limit=3, filter=name)
        assert len(listed) == count, (name, listed)
    ambiguous = await _all_pages(api_system, firm, limit=50, filter="ambiguous")
    assert {_key(i)[1] or _key(i)[2] for i in ambiguous} == {"a-10", "a-11", "2"}
    attention = await _all_pages(api_system, firm, limit=50, filter="attention")
    assert attention[0]["attention"] == "QuickBooks refused the name"


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("alpha", {"a-02", "a-03", "3", "4"}),
        ("ALPHA", {"a-02", "a-03", "3", "4"}),
        ("o'b", {"a-05"}),
        ("drop table", {"a-06"}),
        ("☕", {"a-07"}),
        ("東京", {"a-08"}),
        ("москва", {"7"}),
        ("STRASSE", {"a-09", "6"}),  # casefold: ß is ss
        ("inc", {"a-12"}),  # the pair, by its customer's name
        ("%", set()),
        ("_", set()),
    ],
)
async def test_search_is_a_case_insensitive_substring_of_either_name(
    pool: Pool, api_system: ApiSystem, q: str, expected: set[str]
) -> None:
    firm = await _seed(pool, api_system)
    found = await _all_pages(api_system, firm, limit=2, q=q)
    assert {_key(i)[1] or _key(i)[2] for i in found} == expected


async def test_bad_queries_are_problems_and_change_nothing(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _seed(pool, api_system)
    before = await pool.fetchval("SELECT count(*) FROM accounts")
    headers = bearer(firm.firm_id, "staff")
    url = f"/v1/firms/{firm.firm_id}/records"
    garbage_cursor = base64.urlsafe_b64encode(b'{"not": "a key"}').decode()
    for params in (
        {"filter": "everything"},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
        {"cursor": "%%%"},
        {"cursor": garbage_cursor},
        {"q": "x" * 201},
    ):
        response = await api_system.client.get(url, params=params, headers=headers)
        assert is_problem(response, 422), (params, response.text)
    assert await pool.fetchval("SELECT count(*) FROM accounts") == before
    missing = await api_system.client.get(
        f"/v1/firms/{firm.firm_id}/syncs/not-a-run", headers=headers
    )
    assert is_problem(missing, 404)


async def test_suggestions_rank_similar_unlinked_records_of_the_other_side(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _seed(pool, api_system)
    headers = bearer(firm.firm_id, "staff")
    url = f"/v1/firms/{firm.firm_id}/suggestions"
    response = await api_system.client.get(url, params={"account_id": "a-02"}, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    ids = [i["customer"]["id"] for i in items]
    assert ids[0] == "3"  # Alpha Accounting LLC
    assert "4" not in ids  # a sub-customer is never suggested
    assert "1" not in ids  # linked
    assert all(0 < i["score"] <= 1 for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)

    response = await api_system.client.get(url, params={"customer_id": "2"}, headers=headers)
    accounts = [i["account"]["id"] for i in response.json()["items"]]
    assert set(accounts[:2]) == {"a-10", "a-11"}
    assert "a-12" not in accounts

    for params in ({"account_id": "a-nope"}, {"customer_id": "999"}):
        assert is_problem(await api_system.client.get(url, params=params, headers=headers), 404)
    for params in ({}, {"account_id": "a-02", "customer_id": "3"}):
        assert is_problem(await api_system.client.get(url, params=params, headers=headers), 422)


async def test_audit_lists_entries_newest_first_with_their_actor(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _seed(pool, api_system)
    await record_audit(
        pool,
        [
            AuditEntry(firm.firm_id, "link.created", "Sync Now", "a-12", firm.realm_id, "1"),
            AuditEntry(
                firm.firm_id,
                "field.written",
                "first sync",
                "a-12",
                firm.realm_id,
                "1",
                side="quickbooks",
                field="phone",
                old_value=None,
                new_value="512",
                actor="u-7",
            ),
            AuditEntry(firm.firm_id, "link.removed", "by hand", "a-02", actor="u-7"),
        ],
    )
    headers = bearer(firm.firm_id, "staff")
    url = f"/v1/firms/{firm.firm_id}/audit"
    first = (await api_system.client.get(url, params={"limit": 2}, headers=headers)).json()
    assert [e["action"] for e in first["items"]] == ["link.removed", "field.written"]
    assert first["items"][1] | {"at": None} == {
        "at": None,
        "action": "field.written",
        "account_id": "a-12",
        "customer_id": "1",
        "side": "quickbooks",
        "field": "phone",
        "old": None,
        "new": "512",
        "reason": "first sync",
        "actor": "u-7",
    }
    rest = await api_system.client.get(
        url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    )
    assert [(e["action"], e["actor"]) for e in rest.json()["items"]] == [("link.created", "sync")]
    assert rest.json()["next_cursor"] is None
    one = await api_system.client.get(url, params={"account_id": "a-02"}, headers=headers)
    assert [e["action"] for e in one.json()["items"]] == ["link.removed"]
