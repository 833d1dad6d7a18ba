"""What the integration page lists (GET /records, the counts of GET /integration, GET
/suggestions): both sides' records of a firm, as one list of items.

An item is a linked pair, an unlinked account or an unlinked customer (archived accounts
and inactive or deleted customers are not listed). Items are ordered by the folded name
(`str.casefold()`; the account's for a pair) by code point, then account id, then customer
id (an absent id is the empty string): the folded columns compared under the "C" collation,
which is code point order for UTF-8. Pages are keyset pages: each starts after the key of
the previous page's last item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from qbsync.db.pool import Db

RecordFilter = Literal[
    "all", "linked", "unlinked_accounts", "unlinked_customers", "ambiguous", "attention"
]
RECORD_FILTERS: tuple[RecordFilter, ...] = (
    "all",
    "linked",
    "unlinked_accounts",
    "unlinked_customers",
    "ambiguous",
    "attention",
)


@dataclass(frozen=True, order=True)
class RecordKey:
    folded: str
    account_id: str  # "" for a customer alone
    customer_id: str  # "" for an account alone


@dataclass(frozen=True)
class AccountView:
    id: str
    name: str
    status: str | None
    archived: bool
    address: dict[str, Any] | None
    phone: str | None
    website: str | None
    contacts: list[dict[str, Any]]


@dataclass(frozen=True)
class CustomerView:
    id: str
    realm_id: str
    display_name: str
    active: bool
    parent_id: str | None
    address: dict[str, Any] | None
    phone: str | None
    website: str | None


@dataclass(frozen=True)
class LinkView:
    account_id: str
    customer_id: str
    realm_id: str
    how: str
    linked_at: datetime


@dataclass(frozen=True)
class RecordItem:
    key: RecordKey
    account: AccountView | None
    customer: CustomerView | None
    link: LinkView | None
    attention: str | None


@dataclass(frozen=True)
class Suggestion:
    score: float
    account: AccountView | None = None
    customer: CustomerView | None = None


_ACCOUNT = """a.account_id AS a_id, a.name AS a_name, a.status AS a_status,
    a.archived AS a_archived, a.address AS a_address, a.phone AS a_phone,
    a.website AS a_website, a.contacts AS a_contacts, a.attention AS attention"""
_CUSTOMER = """c.customer_id AS c_id, c.realm_id AS c_realm_id,
    c.display_name AS c_display_name, c.active AS c_active, c.parent_id AS c_parent_id,
    c.address AS c_address, c.phone AS c_phone, c.website AS c_website"""
_NO_ACCOUNT = """NULL::text AS a_id, NULL::text AS a_name, NULL::text AS a_status,
    NULL::bool AS a_archived, NULL::jsonb AS a_address, NULL::text AS a_phone,
    NULL::text AS a_website, NULL::jsonb AS a_contacts, NULL::text AS attention"""
_NO_CUSTOMER = """NULL::text AS c_id, NULL::text AS c_realm_id, NULL::text AS c_display_name,
    NULL::bool AS c_active, NULL::text AS c_parent_id, NULL::jsonb AS c_address,
    NULL::text AS c_phone, NULL::text AS c_website"""
_LINK = "l.how AS l_how, l.linked_at AS l_linked_at, l.realm_id AS l_realm_id"
_NO_LINK = "NULL::text AS l_how, NULL::timestamptz AS l_linked_at, NULL::text AS l_realm_id"

# $1 firm, $2 realm (NULL: the firm has none, so no customer is listed alone).
_LINKED_FROM = """FROM links l
  JOIN accounts a ON a.firm_id = l.firm_id AND a.account_id = l.account_id
  JOIN customers c ON c.realm_id = l.realm_id AND c.customer_id = l.customer_id
 WHERE l.firm_id = $1 AND NOT a.archived AND c.active AND NOT c.deleted"""
_ACCOUNTS_FROM = """FROM accounts a
 WHERE a.firm_id = $1 AND NOT a.archived
   AND NOT EXISTS (SELECT 1 FROM links l WHERE l.firm_id = a.firm_id
                                           AND l.account_id = a.account_id)"""
_CUSTOMERS_FROM = """FROM customers c
 WHERE c.realm_id = $2 AND c.active AND NOT c.deleted
   AND NOT EXISTS (SELECT 1 FROM links l WHERE l.realm_id = c.realm_id
                                           AND l.customer_id = c.customer_id)"""
# The folded names Sync Now would call ambiguous: a name both sides have among their
# unlinked (linkable) records, and more than one record of one side has.
_AMBIGUOUS_NAMES = f"""
SELECT acc.folded FROM
       (SELECT a.name_folded AS folded, count(*) AS n {_ACCOUNTS_FROM} GROUP BY 1) acc
  JOIN (SELECT c.name_folded AS folded, count(*) AS n {_CUSTOMERS_FROM}
           AND c.parent_id IS NULL GROUP BY 1) cus ON cus.folded = acc.folded
 WHERE acc.n > 1 OR cus.n > 1"""

_A_KEY = 'a.name_folded COLLATE "C"'
_C_KEY = 'c.name_folded COLLATE "C"'
_A_SEARCH_KEY = "(a.name_folded || '') COLLATE \"C\""
_NO_ID = "''::text COLLATE \"C\""


Key = tuple[str, str, str]
Part = tuple[str, str, Key]


def _parts(record_filter: RecordFilter, searching: bool) -> list[Part]:
    """(select list, FROM and WHERE, the key's three columns) of each part the filter
    lists."""
    # Searching, each part may walk its folded-name index in order (a common substring:
    # the page fills after a few hundred names) or find the matches through the trigram
    # index and sort them (a rare one): the planner chooses, from the names' statistics.
    a_key, c_key = _A_KEY, _C_KEY
    linked = (
        f"{_ACCOUNT}, {_CUSTOMER}, {_LINK}",
        _LINKED_FROM,
        (a_key, 'l.account_id COLLATE "C"', 'l.customer_id COLLATE "C"'),
    )
    accounts = (
        f"{_ACCOUNT}, {_NO_CUSTOMER}, {_NO_LINK}",
        _ACCOUNTS_FROM,
        (a_key, 'a.account_id COLLATE "C"', _NO_ID),
    )
    customers = (
        f"{_NO_ACCOUNT}, {_CUSTOMER}, {_NO_LINK}",
        _CUSTOMERS_FROM,
        (c_key, _NO_ID, 'c.customer_id COLLATE "C"'),
    )
    a_like, c_like = "a.name_folded LIKE $7", "c.name_folded LIKE $7"

    def where(part: Part, condition: str) -> Part:
        return (part[0], f"{part[1]} AND {condition}", part[2])

    def linked_parts() -> list[Part]:
        # A pair matches by either name: two parts. The pairs found by the customer's name
        # are ordered by the account's, which no index provides: they are found through
        # the customers' trigram index first (the fence keeps the planner from walking
        # every account of the firm in order instead), then sorted.
        if not searching:
            return [linked]
        by_customer_name = (
            linked[0],
            _LINKED_FROM.replace(
                "JOIN customers c",
                "JOIN (SELECT * FROM customers WHERE name_folded LIKE $7 OFFSET 0) c",
            )
            + f" AND NOT {a_like}",
            (_A_SEARCH_KEY, *linked[2][1:]),
        )
        return [where(linked, a_like), by_customer_name]

    def searched(part: Part, like: str) -> list[Part]:
        return [where(part, like)] if searching else [part]

    if record_filter == "linked":
        return linked_parts()
    if record_filter == "unlinked_accounts":
        return searched(accounts, a_like)
    if record_filter == "unlinked_customers":
        return searched(customers, c_like)
    if record_filter == "ambiguous":
        return searched(
            where(accounts, f"a.name_folded IN ({_AMBIGUOUS_NAMES})"), a_like
        ) + searched(
            where(customers, f"c.parent_id IS NULL AND c.name_folded IN ({_AMBIGUOUS_NAMES})"),
            c_like,
        )
    if record_filter == "attention":
        return [where(p, "a.attention IS NOT NULL") for p in linked_parts()] + searched(
            where(accounts, "a.attention IS NOT NULL"), a_like
        )
    return linked_parts() + searched(accounts, a_like) + searched(customers, c_like)


def _like_pattern(q: str) -> str:
    escaped = q.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_records(
    db: Db,
    firm_id: str,
    realm_id: str | None,
    record_filter: RecordFilter,
    q: str | None,
    after: RecordKey | None,
    limit: int,
) -> list[RecordItem]:
    """Up to `limit` items after `after`, in order."""
    start = after or RecordKey("", "", "")
    queries = []
    for select, source, key in _parts(record_filter, bool(q)):
        # Each part ordered and cut on its own (an index serves it), then merged.
        k1, k2, k3 = key
        queries.append(
            f"(SELECT {k1} AS k1, {k2} AS k2, {k3} AS k3, {select} {source}"
            f' AND ({k1}, {k2}, {k3}) > ($3 COLLATE "C", $4 COLLATE "C", $5 COLLATE "C")'
            " ORDER BY 1, 2, 3 LIMIT $6)"
        )
    # The firm and the realm named once more: a filter whose parts name only one would
    # leave the other unused, and an unused parameter has no type.
    sql = (
        f"SELECT listed.* FROM ({' UNION ALL '.join(queries)}) AS listed,"
        " (SELECT $1::text, $2::text) AS parameters ORDER BY 1, 2, 3 LIMIT $6"
    )
    arguments: list[object] = [
        firm_id,
        realm_id,
        start.folded,
        start.account_id,
        start.customer_id,
        limit,
    ]
    if q:  # $7, only when a part names it (an unused parameter has no type)
        arguments.append(_like_pattern(q))
    rows = await db.fetch(sql, *arguments)
    return [_item(row) for row in rows]


async def count_records(db: Db, firm_id: str, realm_id: str | None) -> dict[str, int]:
    """How many items each filter but `all` lists."""
    counts: dict[str, int] = {}
    for record_filter in RECORD_FILTERS[1:]:
        parts = _parts(record_filter, searching=False)
        sql = " + ".join(f"(SELECT count(*) {source})" for _, source, _ in parts)
        # Both parameters named whichever parts the filter has (an unused one has no type).
        both = "(SELECT $1::text, $2::text) AS parameters"
        counts[record_filter] = int(
            await db.fetchval(f"SELECT {sql} FROM {both}", firm_id, realm_id) or 0
        )
    return counts


def _account(row: Mapping[str, Any]) -> AccountView | None:
    if row["a_id"] is None:
        return None
    return AccountView(
        row["a_id"],
        row["a_name"],
        row["a_status"],
        row["a_archived"],
        row["a_address"],
        row["a_phone"],
        row["a_website"],
        list(row["a_contacts"] or []),
    )


def _customer(row: Mapping[str, Any]) -> CustomerView | None:
    if row["c_id"] is None:
        return None
    return CustomerView(
        row["c_id"],
        row["c_realm_id"],
        row["c_display_name"],
        row["c_active"],
        row["c_parent_id"],
        row["c_address"],
        row["c_phone"],
        row["c_website"],
    )


def _item(row: Mapping[str, Any]) -> RecordItem:
    account, customer = _account(row), _customer(row)
    link = None
    if row["l_how"] is not None and account is not None and customer is not None:
        link = LinkView(
            account.id, customer.id, row["l_realm_id"], row["l_how"], row["l_linked_at"]
        )
    return RecordItem(
        RecordKey(row["k1"], row["k2"], row["k3"]), account, customer, link, row["attention"]
    )


SUGGESTIONS = 10


async def suggest_customers(
    db: Db, firm_id: str, realm_id: str, folded_name: str
) -> list[Suggestion]:
    """Unlinked, linkable customers (active, not deleted, no parent) most similar first."""
    rows = await db.fetch(
        f"""
        SELECT {_NO_ACCOUNT}, {_CUSTOMER}, similarity(c.name_folded, $3) AS score
          {_CUSTOMERS_FROM} AND c.parent_id IS NULL AND c.name_folded % $3
           AND $1::text IS NOT NULL -- the firm: named, so that it has a type
         ORDER BY score DESC, c.customer_id COLLATE "C" LIMIT {SUGGESTIONS}
        """,
        firm_id,
        realm_id,
        folded_name,
    )
    return [Suggestion(float(r["score"]), customer=_customer(r)) for r in rows if r["score"] > 0]


async def suggest_accounts(db: Db, firm_id: str, folded_name: str) -> list[Suggestion]:
    """Unlinked accounts (not archived) most similar first."""
    rows = await db.fetch(
        f"""
        SELECT {_ACCOUNT}, {_NO_CUSTOMER}, similarity(a.name_folded, $2) AS score
          {_ACCOUNTS_FROM} AND a.name_folded % $2
         ORDER BY score DESC, a.account_id COLLATE "C" LIMIT {SUGGESTIONS}
        """,
        firm_id,
        folded_name,
    )
    return [Suggestion(float(r["score"]), account=_account(r)) for r in rows if r["score"] > 0]


async def realm_of_firm(db: Db, firm_id: str) -> str | None:
    """The firm's QuickBooks company: its connection's, or (disconnected) its links' or
    last run's, so its records stay listed."""
    realm: str | None = await db.fetchval(
        """
        SELECT COALESCE(
            (SELECT realm_id FROM connections WHERE firm_id = $1),
            (SELECT realm_id FROM links WHERE firm_id = $1 LIMIT 1),
            (SELECT realm_id FROM sync_runs WHERE firm_id = $1 AND realm_id IS NOT NULL
              ORDER BY requested_at DESC LIMIT 1))
        """,
        firm_id,
    )
    return realm


async def get_account_view(db: Db, firm_id: str, account_id: str) -> AccountView | None:
    row = await db.fetchrow(
        f"SELECT {_ACCOUNT}, {_NO_CUSTOMER} FROM accounts a"
        " WHERE a.firm_id = $1 AND a.account_id = $2",
        firm_id,
        account_id,
    )
    return _account(row) if row else None


async def get_customer_view(db: Db, realm_id: str, customer_id: str) -> CustomerView | None:
    row = await db.fetchrow(
        f"SELECT {_NO_ACCOUNT}, {_CUSTOMER} FROM customers c"
        " WHERE c.realm_id = $1 AND c.customer_id = $2 AND NOT c.deleted",
        realm_id,
        customer_id,
    )
    return _customer(row) if row else None
