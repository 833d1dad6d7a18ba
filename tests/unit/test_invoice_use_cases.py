"""The invoice use cases (qbsync/sync/invoices.py) on the in-memory unit of work and the real
client against the in-process emulator: what they list, whom they invoice, what they leave
in QuickBooks, and what they refuse."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import pytest

from qbsync.emulator import RunningEmulator, clock
from qbsync.emulator import invoices as emulated
from qbsync.errors import Conflict, NotFound
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.errors import ServerError
from qbsync.quickbooks.tokens import InMemoryTokenStore
from qbsync.sync import copies
from qbsync.sync.invoices import (
    InvoiceLine,
    InvoiceView,
    create_invoice,
    list_invoices,
    services_item,
)
from qbsync.sync.ports import InvoiceGateway
from tests.support.accounts import account_event
from tests.support.memory_uow import MemoryUnitOfWork
from tests.support.qbo import client_for

FIRM = "firm-1"
ADA = {"id": "c-ada", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.example"}
GRACE = {"id": "c-grace", "first_name": "Grace", "last_name": "Hopper", "email": None}
ALAN = {"id": "c-alan", "first_name": "Alan", "last_name": "Turing", "email": None}


@dataclass
class World:
    uow: MemoryUnitOfWork
    quickbooks: QuickBooksClient
    emulator: RunningEmulator
    realm_id: str

    async def customer(self, display_name: str, **fields: Any) -> dict[str, Any]:
        return await self.emulator.admin.create_customer_as_user(
            self.realm_id, {"DisplayName": display_name, **fields}
        )

    async def account(self, account_id: str, name: str, contacts: list[dict[str, Any]]) -> None:
        await copies.keep_accounts(
            self.uow, [account_event(FIRM, account_id, name, contacts=contacts)]
        )

    async def link(self, account_id: str, customer_id: str) -> None:
        await self.uow.direct.links.insert(
            FIRM, self.realm_id, [(account_id, customer_id)], "manual"
        )

    async def invoice_elsewhere(
        self, customer_id: str, amount: float, description: str, **fields: Any
    ) -> dict[str, Any]:
        """An invoice a QuickBooks user makes, on an item of the realm."""
        item = await services_item(self.quickbooks, self.realm_id, uuid.uuid4().hex)
        line = {
            "Amount": amount,
            "Description": description,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
        }
        return await self.emulator.admin.create_invoice_as_user(
            self.realm_id, {"CustomerRef": {"value": customer_id}, "Line": [line], **fields}
        )

    async def invoice_for(
        self,
        contact_id: str,
        *lines: InvoiceLine,
        account_id: str = "a-acme",
        due_date: date | None = None,
        request_id: str = "r",
        quickbooks: InvoiceGateway | None = None,
    ) -> InvoiceView:
        return await create_invoice(
            self.uow,
            quickbooks or self.quickbooks,
            FIRM,
            account_id,
            contact_id=contact_id,
            lines=lines,
            due_date=due_date,
            request_id=request_id,
        )

    async def items_named_services(self) -> list[dict[str, Any]]:
        return await self.quickbooks.find_items_by_name(self.realm_id, "Services")

    async def writes(self, path_end: str) -> int:
        return sum(
            1
            for r in await self.emulator.admin.requests(self.realm_id)
            if r["method"] == "POST" and r["path"].endswith(path_end)
        )


@pytest.fixture
async def world(emulator: RunningEmulator) -> AsyncIterator[World]:
    realm = await emulator.admin.create_realm(contents="empty")
    client = client_for(emulator, InMemoryTokenStore({realm["realm_id"]: realm["refresh_token"]}))
    uow = MemoryUnitOfWork()
    uow.connect(FIRM, realm["realm_id"])
    yield World(uow, client, emulator, realm["realm_id"])
    await client.aclose()


async def acme(world: World) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Acme Ltd (individual Grace Hopper) linked to account a-acme, with sub-customers
    Ada Lovelace (a person) and a job; contacts Ada, Grace and Alan."""
    parent = await world.customer("Acme Ltd", GivenName="Grace", FamilyName="Hopper")
    ada = await world.customer(
        "Ada Lovelace", GivenName="Ada", FamilyName="Lovelace", ParentRef={"value": parent["Id"]}
    )
    job = await world.customer("Kitchen Remodel", ParentRef={"value": parent["Id"]})
    await world.account("a-acme", "Acme Ltd", [ADA, GRACE, ALAN])
    await world.link("a-acme", parent["Id"])
    return parent, ada, job


async def test_lists_the_linked_customers_and_its_sub_customers_invoices(world: World) -> None:
    parent, ada, job = await acme(world)
    deeper = await world.customer("Phase 2", ParentRef={"value": job["Id"]})
    stranger = await world.customer("Someone Else Inc", GivenName="Sam", FamilyName="Else")
    mine = await world.invoice_elsewhere(parent["Id"], 100, "Tax return", TxnDate="2026-01-10")
    adas = await world.invoice_elsewhere(ada["Id"], 50, "Bookkeeping", TxnDate="2026-02-10")
    jobs = await world.invoice_elsewhere(job["Id"], 70, "Payroll", TxnDate="2026-03-10")
    deepest = await world.invoice_elsewhere(deeper["Id"], 20, "Audit", TxnDate="2026-04-10")
    await world.invoice_elsewhere(stranger["Id"], 999, "Not theirs")

    listed = await list_invoices(world.uow, world.quickbooks, FIRM, "a-acme")

    assert [(v.id, v.customer_id, v.contact_name) for v in listed] == [
        (deepest["Id"], deeper["Id"], None),  # a job without an individual names nobody
        (jobs["Id"], job["Id"], None),
        (adas["Id"], ada["Id"], "Ada Lovelace"),
        (mine["Id"], parent["Id"], "Grace Hopper"),
    ]
    first = listed[-1]
    assert (first.doc_number, first.txn_date, first.total, first.balance) == (
        mine["DocNumber"],
        "2026-01-10",
        100.0,
        100.0,
    )
    assert first.due_date == mine["DueDate"]


async def test_q_and_status_filter_the_list(world: World) -> None:
    parent, ada, _ = await acme(world)
    tax = await world.invoice_elsewhere(parent["Id"], 100, "Tax Return 2025")
    books = await world.invoice_elsewhere(ada["Id"], 40, "Monthly bookkeeping")
    await world.emulator.admin.receive_payment_as_user(world.realm_id, books["Id"], 40)
    part = await world.invoice_elsewhere(parent["Id"], 60, "Advisory")
    await world.emulator.admin.receive_payment_as_user(world.realm_id, part["Id"], 10)

    async def ids(q: str | None = None, status: Any = "all") -> set[str]:
        found = await list_invoices(world.uow, world.quickbooks, FIRM, "a-acme", q=q, status=status)
        return {v.id for v in found}

    assert await ids() == {tax["Id"], books["Id"], part["Id"]}
    assert await ids(status="open") == {tax["Id"], part["Id"]}  # partly paid is still open
    assert await ids(status="paid") == {books["Id"]}
    assert await ids(q="return") == {tax["Id"]}
    assert await ids(q="BOOKKEEPING", status="open") == set()
    assert await ids(q=books["DocNumber"]) == {books["Id"]}
    assert await ids(q="nothing like it") == set()
    (paid,) = await list_invoices(world.uow, world.quickbooks, FIRM, "a-acme", status="paid")
    assert (paid.total, paid.balance) == (40.0, 0.0)


async def test_the_list_pages_through_more_than_a_thousand_invoices(world: World) -> None:
    parent, _, _ = await acme(world)
    item = await services_item(world.quickbooks, world.realm_id, "seed")
    realm = world.emulator.store.get(world.realm_id)
    assert realm is not None
    line = {
        "Amount": 1,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
    }
    for _ in range(1205):
        emulated.create(
            realm.realm, {"CustomerRef": {"value": parent["Id"]}, "Line": [line]}, clock.now()
        )

    listed = await list_invoices(world.uow, world.quickbooks, FIRM, "a-acme")

    assert len(listed) == 1205 == len({v.id for v in listed})


async def test_an_invoice_for_the_customers_own_individual(world: World) -> None:
    parent, _, _ = await acme(world)

    made = await world.invoice_for(
        "c-grace",
        InvoiceLine(120.5, "Tax return"),
        InvoiceLine(30, "Filing fee"),
        due_date=date(2026, 12, 31),
        request_id="r-1",
    )

    assert (made.customer_id, made.contact_name) == (parent["Id"], "Grace Hopper")
    assert (made.total, made.balance, made.due_date) == (150.5, 150.5, "2026-12-31")
    (stored,) = await world.emulator.admin.invoices(world.realm_id)
    assert stored["Id"] == made.id and stored["DocNumber"] == made.doc_number
    (services,) = await world.items_named_services()
    assert services["Type"] == "Service"
    lines = [line for line in stored["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [(line["Amount"], line["Description"]) for line in lines] == [
        (120.5, "Tax return"),
        (30, "Filing fee"),
    ]
    assert {line["SalesItemLineDetail"]["ItemRef"]["value"] for line in lines} == {services["Id"]}


async def test_an_invoice_for_a_contact_who_is_a_sub_customer_goes_to_that_customer(
    world: World,
) -> None:
    _, ada, _ = await acme(world)

    made = await world.invoice_for("c-ada", InvoiceLine(80, "Bookkeeping"), request_id="r-2")

    assert (made.customer_id, made.contact_name) == (ada["Id"], "Ada Lovelace")
    listed = await list_invoices(world.uow, world.quickbooks, FIRM, "a-acme")
    assert [(v.id, v.customer_id, v.contact_name) for v in listed] == [
        (made.id, ada["Id"], "Ada Lovelace")
    ]


async def test_an_invoice_for_a_contact_quickbooks_does_not_know(world: World) -> None:
    parent, _, _ = await acme(world)

    made = await world.invoice_for("c-alan", InvoiceLine(10, None), request_id="r-3")

    assert (made.customer_id, made.contact_name) == (parent["Id"], "Grace Hopper")


async def test_the_services_item_is_created_once_and_then_reused(world: World) -> None:
    await acme(world)

    async def invoice(request_id: str) -> str:
        made = await world.invoice_for("c-alan", InvoiceLine(10, "x"), request_id=request_id)
        return made.id

    # two first invoices at once: one creates the item, the other is refused (6240) and
    # uses it; later ones find it
    first = await asyncio.gather(invoice("r-a"), invoice("r-b"))
    later = await invoice("r-c")

    assert len({*first, later}) == 3
    assert len(await world.items_named_services()) == 1
    assert len(await world.emulator.admin.invoices(world.realm_id)) == 3


async def test_a_services_item_the_realm_has_is_used(
    world: World, emulator: RunningEmulator
) -> None:
    sandbox = client_for(emulator, InMemoryTokenStore({emulator.realm_id: emulator.refresh_token}))
    try:
        item = await services_item(sandbox, emulator.realm_id, "r-sandbox")
    finally:
        await sandbox.aclose()
    assert (item["Id"], item["Name"]) == ("1", "Services")


async def test_a_retried_create_makes_one_invoice(world: World) -> None:
    await acme(world)

    async def invoice() -> str:
        made = await world.invoice_for(
            "c-grace", InvoiceLine(10, "once"), request_id="same-request"
        )
        return made.id

    assert await invoice() == await invoice()
    assert len(await world.emulator.admin.invoices(world.realm_id)) == 1


@pytest.mark.parametrize(
    ("account_id", "contact_id", "refusal", "says"),
    [
        ("a-nobody", "c-grace", NotFound, "account 'a-nobody' does not exist"),
        ("a-acme", "c-nobody", NotFound, "contact of account 'a-acme' 'c-nobody' does not exist"),
        ("a-unlinked", "c-ada", Conflict, "account 'a-unlinked' is not linked"),
    ],
)
async def test_refusals(
    world: World, account_id: str, contact_id: str, refusal: type[Exception], says: str
) -> None:
    await acme(world)
    await world.account("a-unlinked", "Unlinked Co", [ADA])

    with pytest.raises(refusal, match=says):
        await world.invoice_for(
            contact_id, InvoiceLine(10, "x"), account_id=account_id, request_id="r"
        )
    if contact_id != "c-nobody":
        with pytest.raises(refusal, match=says):
            await list_invoices(world.uow, world.quickbooks, FIRM, account_id)
    assert await world.writes("/invoice") == 0


async def test_a_firm_not_connected_or_needing_a_reconnect_is_refused(world: World) -> None:
    await acme(world)
    for status in ("needs_reconnect", None):
        if status is None:
            del world.uow.state.connections[FIRM]
        else:
            world.uow.connect(FIRM, world.realm_id, status)
        with pytest.raises(Conflict, match="connect"):
            await list_invoices(world.uow, world.quickbooks, FIRM, "a-acme")


async def test_a_linked_customer_made_inactive_is_refused(world: World) -> None:
    parent, _, _ = await acme(world)
    await world.emulator.admin.edit_customer_as_user(
        world.realm_id, parent["Id"], {"Active": False}
    )

    with pytest.raises(Conflict, match="inactive in QuickBooks"):
        await list_invoices(world.uow, world.quickbooks, FIRM, "a-acme")


async def test_quickbooks_down_creates_nothing(world: World, emulator: RunningEmulator) -> None:
    await acme(world)
    await emulator.admin.set_faults(world.realm_id, fault_5xx_rate=1.0)

    with pytest.raises(ServerError):
        await world.invoice_for("c-grace", InvoiceLine(10, "x"), request_id="r-down")
    await emulator.admin.set_faults(world.realm_id, fault_5xx_rate=0.0)
    assert await world.emulator.admin.invoices(world.realm_id) == []


async def test_the_list_names_the_contact_an_invoice_was_made_for(world: World) -> None:
    parent = await world.customer("Bolt Inc")  # a company: no individual on it
    known = await world.customer("ada lovelace", ParentRef={"value": parent["Id"]})
    await world.account("a-bolt", "Bolt Inc", [ADA, ALAN])
    await world.link("a-bolt", parent["Id"])

    made = await world.invoice_for(
        "c-ada", InvoiceLine(25, "Advice"), account_id="a-bolt", request_id="r-made"
    )
    elsewhere = await world.invoice_elsewhere(known["Id"], 5, "Made in QuickBooks")

    assert (made.customer_id, made.contact_name) == (known["Id"], "Ada Lovelace")
    listed = await list_invoices(world.uow, world.quickbooks, FIRM, "a-bolt")
    assert {(v.id, v.contact_name) for v in listed} == {
        (made.id, "Ada Lovelace"),  # the contact it was made for
        (elsewhere["Id"], None),  # its customer's individual: it has none
    }


class DeactivatesFirst:
    """QuickBooks' customer made inactive by a user just before the invoice arrives."""

    def __init__(self, world: World, customer_id: str) -> None:
        self._world = world
        self._customer_id = customer_id

    async def create_invoice(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        await self._world.emulator.admin.edit_customer_as_user(
            realm_id, self._customer_id, {"Active": False}
        )
        return await self._world.quickbooks.create_invoice(realm_id, body, request_id=request_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._world.quickbooks, name)


async def test_an_invoice_quickbooks_refuses_is_a_conflict_and_nothing_is_recorded(
    world: World,
) -> None:
    _, ada, _ = await acme(world)

    with pytest.raises(Conflict, match="QuickBooks refused the invoice"):
        await world.invoice_for(
            "c-ada",
            InvoiceLine(10, "x"),
            request_id="r-refused",
            quickbooks=cast(InvoiceGateway, DeactivatesFirst(world, ada["Id"])),
        )
    assert await world.emulator.admin.invoices(world.realm_id) == []
    assert world.uow.state.invoice_contacts == {}
