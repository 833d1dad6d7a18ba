"""GET and POST /v1/firms/{firm_id}/accounts/{account_id}/invoices end to end: the API as a
process (`python -m services.api`, in the running system) on the real PostgreSQL, calling
the QuickBooks emulator (a process too) with the firm's stored connection."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from qbsync.crypto import TokenCipher
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from qbsync.db.unit_of_work import PostgresUnitOfWork
from qbsync.emulator.admin_client import EmulatorAdmin
from tests.conftest import unique
from tests.integration.conftest import ApiSystem
from tests.support.accounts import account_event
from tests.support.api import bearer, is_problem, token

ADA = {"id": "c-ada", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.example"}
GRACE = {"id": "c-grace", "first_name": "Grace", "last_name": "Hopper", "email": None}
ALAN = {"id": "c-alan", "first_name": "Alan", "last_name": "Turing", "email": None}


@dataclass
class Api:
    """The running system's API and emulator, and the database they share."""

    running: ApiSystem
    pool: Pool

    @property
    def admin(self) -> EmulatorAdmin:
        return self.running.system.admin

    @property
    def http(self) -> httpx.AsyncClient:
        return self.running.client

    @property
    def secret_key(self) -> str:
        return self.running.system.env["QBSYNC_SECRET_KEY"]

    def token(self, firm_id: str, role: str = "admin") -> str:
        return token(firm_id, role)

    async def call(
        self, method: str, firm_id: str, path: str, *, role: str = "admin", **kwargs: Any
    ) -> httpx.Response:
        headers = {**bearer(firm_id, role), **kwargs.pop("headers", {})}
        return await self.http.request(
            method, f"/v1/firms/{firm_id}{path}", headers=headers, **kwargs
        )


@pytest.fixture
def api(api_system: ApiSystem, pool: Pool) -> Api:
    return Api(api_system, pool)


@dataclass
class Firm:
    api: Api
    firm_id: str
    realm_id: str

    async def customer(self, display_name: str, **fields: Any) -> dict[str, Any]:
        return await self.api.admin.create_customer_as_user(
            self.realm_id, {"DisplayName": display_name, **fields}
        )

    async def account(self, account_id: str, name: str, contacts: list[dict[str, Any]]) -> None:
        event = account_event(self.firm_id, account_id, name, contacts=contacts)
        await PostgresUnitOfWork(self.api.pool).direct.accounts.store([event])

    async def link(self, account_id: str, customer_id: str) -> None:
        uow = PostgresUnitOfWork(self.api.pool)
        await uow.direct.links.insert(
            self.firm_id, self.realm_id, [(account_id, customer_id)], "manual"
        )

    async def invoice_elsewhere(
        self, customer_id: str, amount: float, description: str, item_id: str
    ) -> dict[str, Any]:
        line = {
            "Amount": amount,
            "Description": description,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item_id}},
        }
        return await self.api.admin.create_invoice_as_user(
            self.realm_id, {"CustomerRef": {"value": customer_id}, "Line": [line]}
        )

    async def get(self, path: str, role: str = "staff", **kwargs: Any) -> httpx.Response:
        return await self.api.call("GET", self.firm_id, path, role=role, **kwargs)

    async def post(self, path: str, role: str = "admin", **kwargs: Any) -> httpx.Response:
        return await self.api.call("POST", self.firm_id, path, role=role, **kwargs)

    async def invoices_in_quickbooks(self) -> list[dict[str, Any]]:
        return await self.api.admin.invoices(self.realm_id)

    async def items_in_quickbooks(self) -> int:
        return int((await self.api.admin.realm(self.realm_id))["items"])


async def new_firm(api: Api, *, connected: bool = True) -> Firm:
    realm = await api.admin.create_realm(contents="empty")
    firm = Firm(api, unique("firm"), str(realm["realm_id"]))
    if connected:
        await store_connection(
            api.pool,
            TokenCipher(api.secret_key),
            firm.firm_id,
            firm.realm_id,
            str(realm["refresh_token"]),
        )
    return firm


async def acme(api: Api) -> tuple[Firm, dict[str, Any], dict[str, Any]]:
    """Acme Ltd (individual Grace Hopper) linked to account a-acme, its sub-customer Ada
    Lovelace; the account's contacts are Ada, Grace and Alan."""
    firm = await new_firm(api)
    parent = await firm.customer("Acme Ltd", GivenName="Grace", FamilyName="Hopper")
    ada = await firm.customer(
        "Ada Lovelace", GivenName="Ada", FamilyName="Lovelace", ParentRef={"value": parent["Id"]}
    )
    await firm.account("a-acme", "Acme Ltd", [ADA, GRACE, ALAN])
    await firm.link("a-acme", parent["Id"])
    return firm, parent, ada


def invoice_body(contact_id: str, *amounts: float, due: str | None = None) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "lines": [{"amount": a, "description": f"Work line {n}"} for n, a in enumerate(amounts)],
        "due_date": due,
    }


INVOICE_KEYS = {
    "id",
    "doc_number",
    "txn_date",
    "due_date",
    "total",
    "balance",
    "customer_id",
    "contact_name",
}


async def test_a_contact_quickbooks_knows_and_one_it_does_not(api: Api) -> None:
    firm, parent, ada = await acme(api)
    assert await firm.items_in_quickbooks() == 0
    path = "/accounts/a-acme/invoices"

    as_individual = await firm.post(path, json=invoice_body("c-grace", 100, 20.5, due="2026-12-31"))
    as_sub_customer = await firm.post(path, json=invoice_body("c-ada", 80))
    unknown = await firm.post(path, json=invoice_body("c-alan", 10))

    for response in (as_individual, as_sub_customer, unknown):
        assert response.status_code == 201, response.text
        assert set(response.json()) == INVOICE_KEYS
    first = as_individual.json()
    assert (first["customer_id"], first["contact_name"], first["total"], first["balance"]) == (
        parent["Id"],
        "Grace Hopper",
        120.5,
        120.5,
    )
    assert first["due_date"] == "2026-12-31"
    assert (as_sub_customer.json()["customer_id"], as_sub_customer.json()["contact_name"]) == (
        ada["Id"],
        "Ada Lovelace",
    )
    assert (unknown.json()["customer_id"], unknown.json()["contact_name"]) == (
        parent["Id"],
        "Grace Hopper",
    )
    # in QuickBooks: three invoices, their lines on one Services item, created once
    stored = {i["Id"]: i for i in await firm.invoices_in_quickbooks()}
    assert set(stored) == {r.json()["id"] for r in (as_individual, as_sub_customer, unknown)}
    assert await firm.items_in_quickbooks() == 1
    lines = [
        line for line in stored[first["id"]]["Line"] if line["DetailType"] == "SalesItemLineDetail"
    ]
    assert [(line["Amount"], line["Description"]) for line in lines] == [
        (100, "Work line 0"),
        (20.5, "Work line 1"),
    ]
    assert {line["SalesItemLineDetail"]["ItemRef"]["name"] for line in lines} == {"Services"}

    listed = (await firm.get(path)).json()["items"]
    assert {(i["id"], i["customer_id"], i["contact_name"]) for i in listed} == {
        (first["id"], parent["Id"], "Grace Hopper"),
        (as_sub_customer.json()["id"], ada["Id"], "Ada Lovelace"),
        (unknown.json()["id"], parent["Id"], "Grace Hopper"),
    }


async def test_the_list_filters_by_q_and_status_and_includes_sub_customers(api: Api) -> None:
    firm, parent, ada = await acme(api)
    stranger = await firm.customer("Stranger Co", GivenName="Sam", FamilyName="Else")
    made = await firm.post("/accounts/a-acme/invoices", json=invoice_body("c-grace", 1))
    item_id = next(
        line["SalesItemLineDetail"]["ItemRef"]["value"]
        for line in (await firm.invoices_in_quickbooks())[0]["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    )
    tax = await firm.invoice_elsewhere(parent["Id"], 300, "Tax Return 2025", item_id)
    books = await firm.invoice_elsewhere(ada["Id"], 40, "Monthly bookkeeping", item_id)
    await api.admin.receive_payment_as_user(firm.realm_id, books["Id"], 40)
    await firm.invoice_elsewhere(stranger["Id"], 999, "Tax Return 2025", item_id)

    async def ids(**params: str) -> set[str]:
        response = await firm.get("/accounts/a-acme/invoices", params=params)
        assert response.status_code == 200, response.text
        return {i["id"] for i in response.json()["items"]}

    everything = {made.json()["id"], tax["Id"], books["Id"]}
    assert await ids() == everything == await ids(status="all")
    assert await ids(status="open") == {made.json()["id"], tax["Id"]}
    assert await ids(status="paid") == {books["Id"]}
    assert await ids(q="tax RETURN") == {tax["Id"]}
    assert await ids(q=books["DocNumber"], status="paid") == {books["Id"]}
    assert await ids(q='it\'s "quoted" 🧾 налог') == set()
    (paid,) = (await firm.get("/accounts/a-acme/invoices?status=paid")).json()["items"]
    assert paid == {
        "id": books["Id"],
        "doc_number": books["DocNumber"],
        "txn_date": books["TxnDate"],
        "due_date": books["DueDate"],
        "total": 40.0,
        "balance": 0.0,
        "customer_id": ada["Id"],
        "contact_name": "Ada Lovelace",
    }


async def test_an_idempotency_key_makes_one_invoice(api: Api) -> None:
    firm, _, _ = await acme(api)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    body = invoice_body("c-grace", 75)

    first = await firm.post("/accounts/a-acme/invoices", json=body, headers=headers)
    again = await firm.post("/accounts/a-acme/invoices", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert len(await firm.invoices_in_quickbooks()) == 1


async def test_who_may_and_what_does_not_exist(api: Api) -> None:
    firm, _, _ = await acme(api)
    other, _, _ = await acme(api)
    await firm.account("a-alone", "Alone LLC", [ADA])
    not_connected = await new_firm(api, connected=False)
    await not_connected.account("a-nc", "Nowhere Inc", [ADA])
    path = "/accounts/a-acme/invoices"

    staff = await firm.post(path, role="staff", json=invoice_body("c-grace", 10))
    assert is_problem(staff, 403), staff.text
    assert (await firm.get(path, role="staff")).status_code == 200
    # firm B's token on firm A's paths: 404, as for a firm that does not exist
    for method in ("GET", "POST"):
        response = await api.http.request(
            method,
            f"/v1/firms/{firm.firm_id}{path}",
            headers={"Authorization": f"Bearer {api.token(other.firm_id)}"},
            json=invoice_body("c-grace", 10),
        )
        assert response.status_code == 404, response.text
    assert (await firm.get(path, headers={"Authorization": "Bearer nonsense"})).status_code == 401

    expectations = [
        ("GET", firm, "/accounts/a-nobody/invoices", None, 404),
        ("POST", firm, "/accounts/a-nobody/invoices", invoice_body("c-ada", 1), 404),
        ("POST", firm, path, invoice_body("c-nobody", 1), 404),
        ("GET", firm, "/accounts/a-alone/invoices", None, 409),
        ("POST", firm, "/accounts/a-alone/invoices", invoice_body("c-ada", 1), 409),
        ("GET", not_connected, "/accounts/a-nc/invoices", None, 409),
        ("POST", not_connected, "/accounts/a-nc/invoices", invoice_body("c-ada", 1), 409),
    ]
    for method, whose, where, body, status in expectations:
        response = await api.call(method, whose.firm_id, where, json=body)
        assert is_problem(response, status), (method, where, response.text)
        assert set(response.json()) >= {"type", "title", "status", "detail"}
    assert await firm.invoices_in_quickbooks() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 422),
        (b"[]", 422),
        ({"contact_id": "c-ada", "lines": []}, 422),
        ({"contact_id": "c-ada"}, 422),
        ({"contact_id": 7, "lines": [{"amount": 1}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": "10"}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 0}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": -5}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 1.001}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 1e300}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 1, "description": 5}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 1}], "due_date": "tomorrow"}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 1}], "discount": 5}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 1, "description": "x" * 4001}]}, 422),
        ({"contact_id": "c-ada", "lines": [{"amount": 1, "description": "x" * 70_000}]}, 413),
        ({"contact_id": "c-ada", "lines": [{"amount": 1}] * 251}, 422),
    ],
)
async def test_bad_input_is_a_problem_and_creates_nothing(
    api: Api, body: bytes | dict[str, Any], status: int
) -> None:
    firm, _, _ = await acme(api)
    content = body if isinstance(body, bytes) else None
    response = await firm.post(
        "/accounts/a-acme/invoices",
        content=content,
        json=None if content is not None else body,
        headers={"Content-Type": "application/json"},
    )
    assert is_problem(response, status), response.text
    assert await firm.invoices_in_quickbooks() == []


async def test_bad_queries_and_names_never_answer_500(api: Api) -> None:
    firm, _, _ = await acme(api)
    for query, status in [
        ("status=unpaid", 422),
        ("q=" + "x" * 201, 422),
        ("q=%27%3B%20DROP%20TABLE%20links%3B--", 200),
        ("q=%F0%9F%A7%BE", 200),
    ]:
        response = await firm.get(f"/accounts/a-acme/invoices?{query}")
        assert response.status_code == status, (query, response.text)
    odd = {
        "contact_id": "c-ada",
        "lines": [{"amount": 12.34, "description": "O'Brien «税» 🧾 ; --"}],
    }
    made = await firm.post("/accounts/a-acme/invoices", json=odd)
    assert made.status_code == 201, made.text
    found = await firm.get("/accounts/a-acme/invoices", params={"q": "«税» 🧾"})
    assert [i["id"] for i in found.json()["items"]] == [made.json()["id"]]
    for weird in ("%27%20OR%201%3D1--", "%00", "a%00b", "%F0%9F%A7%BE"):
        response = await firm.get(f"/accounts/{weird}/invoices")
        assert response.status_code == 404, (weird, response.text)
        posted = await firm.post(f"/accounts/{weird}/invoices", json=invoice_body("c-ada", 1))
        assert posted.status_code == 404, (weird, posted.text)
    with_nul = await firm.post("/accounts/a-acme/invoices", json=invoice_body("c-\u0000", 1))
    assert with_nul.status_code == 404, with_nul.text


async def test_quickbooks_unavailable_is_503_with_retry_after_and_nothing_made(api: Api) -> None:
    firm, _, _ = await acme(api)
    await api.admin.set_faults(firm.realm_id, fault_5xx_rate=1.0)
    try:
        created = await firm.post("/accounts/a-acme/invoices", json=invoice_body("c-grace", 10))
        listed = await firm.get("/accounts/a-acme/invoices")
    finally:
        await api.admin.set_faults(firm.realm_id, fault_5xx_rate=0.0)
    for response in (created, listed):
        assert is_problem(response, 503), response.text
        assert int(response.headers["Retry-After"]) > 0
    assert await firm.invoices_in_quickbooks() == []
    # and once it is back, the same request works
    retried = await firm.post("/accounts/a-acme/invoices", json=invoice_body("c-grace", 10))
    assert retried.status_code == 201, retried.text


async def test_first_invoices_at_once_share_one_services_item_and_keep_their_contact(
    api: Api,
) -> None:
    firm = await new_firm(api)
    parent = await firm.customer("Bolt Inc")  # a company: no individual on it
    known = await firm.customer("ada lovelace", ParentRef={"value": parent["Id"]})
    await firm.account("a-bolt", "Bolt Inc", [ADA, ALAN])
    await firm.link("a-bolt", parent["Id"])
    path = "/accounts/a-bolt/invoices"

    made = await asyncio.gather(
        firm.post(path, json=invoice_body("c-ada", 10)),
        firm.post(path, json=invoice_body("c-alan", 20)),
        firm.post(path, json=invoice_body("c-ada", 30)),
    )

    assert [r.status_code for r in made] == [201, 201, 201], [r.text for r in made]
    assert await firm.items_in_quickbooks() == 1
    assert len(await firm.invoices_in_quickbooks()) == 3
    listed = (await firm.get(path)).json()["items"]
    # Ada's invoices went to the sub-customer of her name and say so; Alan's to the company,
    # which has no individual to name
    assert sorted((i["total"], i["customer_id"], i["contact_name"]) for i in listed) == [
        (10.0, known["Id"], "Ada Lovelace"),
        (20.0, parent["Id"], None),
        (30.0, known["Id"], "Ada Lovelace"),
    ]
