"""The emulator checked by a client no one here wrote: python-quickbooks (with intuitlib for
OAuth) creates, reads, updates and queries customers, creates a service item on an income
account, and creates and queries invoices (by customers, balance, number, due date) with
its own objects, exactly as it would against QuickBooks Online.

python-quickbooks is synchronous (requests), so each scenario runs in a worker thread
while the emulator serves from the test's event loop.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import ObjectNotFoundException, QuickbooksException
from quickbooks.objects.account import Account
from quickbooks.objects.base import Address, EmailAddress, PhoneNumber, WebAddress
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item

from qbsync.emulator import RunningEmulator


@pytest.fixture(autouse=True)
def plain_http_for_oauthlib(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests-oauthlib refuses http:// unless told; the emulator listens on 127.0.0.1.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def connect(emulator: RunningEmulator, refresh_token: str) -> QuickBooks:
    """The library's own set-up: intuitlib finds the token endpoint through the discovery
    document (its `environment` may be a discovery URL) and refreshes; python-quickbooks
    builds every API URL from `api_url_v3`, pointed here at the emulator."""
    auth_client = AuthClient(
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        redirect_uri="http://127.0.0.1/callback",
        environment=emulator.discovery_url,
    )
    client = QuickBooks(
        auth_client=auth_client,
        refresh_token=refresh_token,
        company_id=emulator.realm_id,
        minorversion=75,
    )
    client.api_url_v3 = f"{emulator.base_url}/v3"
    return client


def customers_scenario(qb: QuickBooks) -> None:
    customer = Customer()
    customer.DisplayName = "Liscio Test LLC"
    customer.CompanyName = "Liscio Test LLC"
    customer.BillAddr = Address()
    customer.BillAddr.Line1 = "1 Main St"
    customer.BillAddr.City = "Austin"
    customer.BillAddr.CountrySubDivisionCode = "TX"
    customer.BillAddr.PostalCode = "78701"
    customer.PrimaryEmailAddr = EmailAddress()
    customer.PrimaryEmailAddr.Address = "ada@liscio.example"
    created = customer.save(qb=qb)
    assert created.Id == "31" and created.SyncToken == "0"
    assert created.BillAddr.City == "Austin"
    assert created.MetaData["CreateTime"]

    read = Customer.get(created.Id, qb=qb)
    assert read.DisplayName == "Liscio Test LLC"
    assert read.PrimaryEmailAddr.Address == "ada@liscio.example"

    read.PrimaryPhone = PhoneNumber()
    read.PrimaryPhone.FreeFormNumber = "512-555-0100"
    read.WebAddr = WebAddress()
    read.WebAddr.URI = "https://liscio.example"
    updated = read.save(qb=qb)  # a full update: the library sends every field back
    assert updated.SyncToken == "1"
    assert updated.PrimaryPhone.FreeFormNumber == "512-555-0100"
    assert updated.BillAddr.Line1 == "1 Main St"

    with pytest.raises(QuickbooksException) as stale:
        created.save(qb=qb)  # SyncToken "0" is out of date now
    assert stale.value.error_code == 5010

    duplicate = Customer()
    duplicate.DisplayName = "liscio test llc"
    with pytest.raises(QuickbooksException) as clash:
        duplicate.save(qb=qb)
    assert clash.value.error_code == 6240

    with pytest.raises(ObjectNotFoundException):
        Customer.get(99999, qb=qb)

    found = Customer.filter(DisplayName="Liscio Test LLC", qb=qb)
    assert [c.Id for c in found] == [created.Id]
    assert [c.Id for c in Customer.filter(Active=True, DisplayName="Cool Cars", qb=qb)] == ["3"]
    assert [c.DisplayName for c in Customer.where("DisplayName LIKE 'Bill%'", qb=qb)] == [
        "Bill's Windsurf Shop"
    ]
    chosen = Customer.choose(["1", "2", created.Id], qb=qb)
    assert sorted(c.Id for c in chosen) == ["1", "2", created.Id]
    assert Customer.count(qb=qb) == 28
    assert Customer.count("Active IN (true, false)", qb=qb) == 31
    everyone = Customer.all(order_by="DisplayName", max_results=1000, qb=qb)
    assert len(everyone) == 28 and everyone[0].DisplayName == "0969 Ocean View Road"
    page = Customer.where("", start_position=11, max_results=5, qb=qb)
    assert [c.Id for c in page] == ["11", "12", "13", "14", "15"]
    quoted = Customer.filter(DisplayName="Amy's Bird Sanctuary", qb=qb)
    assert [c.Id for c in quoted] == ["1"]

    updated.Active = False
    deactivated = updated.save(qb=qb)
    assert deactivated.Active is False
    assert Customer.filter(DisplayName="Liscio Test LLC", qb=qb) == []


def invoice_scenario(qb: QuickBooks) -> None:
    customer = Customer.get(3, qb=qb)
    item = Item.get(2, qb=qb)
    assert item.Name == "Design"
    assert len(Item.all(qb=qb)) == 6

    line = SalesItemLine()
    line.Amount = 150
    line.Description = "Tax return preparation"
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = item.to_ref()
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line.append(line)
    saved = invoice.save(qb=qb)
    assert saved.Id == "1" and saved.TotalAmt == 150.0 and saved.DocNumber == "1001"
    assert saved.CustomerRef.value == "3" and saved.CustomerRef.name == "Cool Cars"

    again = Invoice.get(saved.Id, qb=qb)
    assert again.Line[0].SalesItemLineDetail.ItemRef.name == "Design"
    assert [i.Id for i in Invoice.filter(CustomerRef="3", qb=qb)] == [saved.Id]
    assert Invoice.filter(CustomerRef="1", qb=qb) == []
    assert Customer.get(3, qb=qb).Balance == 150.0


def items_and_invoice_queries_scenario(qb: QuickBooks) -> None:
    (income,) = Account.filter(AccountType="Income", Name="Services", qb=qb)
    item = Item()
    item.Name = "Liscio Services"
    item.Type = "Service"
    item.IncomeAccountRef = income.to_ref()
    saved_item = item.save(qb=qb)
    assert saved_item.Id == "7" and saved_item.IncomeAccountRef.name == "Services"
    twin = Item()
    twin.Name = "liscio services"
    twin.Type = "Service"
    twin.IncomeAccountRef = income.to_ref()
    with pytest.raises(QuickbooksException) as clash:
        twin.save(qb=qb)
    assert clash.value.error_code == 6240
    assert [i.Id for i in Item.filter(Type="Service", Name="Liscio Services", qb=qb)] == ["7"]

    (parent,) = Customer.filter(DisplayName="Freeman Sporting Goods", qb=qb)
    (job,) = Customer.where(f"FullyQualifiedName LIKE '{parent.DisplayName}:%'", qb=qb)
    made = []
    for customer, amount in ((parent, 40), (job, 60)):
        line = SalesItemLine()
        line.Amount = amount
        line.Description = f"Quarterly review for {customer.DisplayName}"
        line.SalesItemLineDetail = SalesItemLineDetail()
        line.SalesItemLineDetail.ItemRef = saved_item.to_ref()
        invoice = Invoice()
        invoice.CustomerRef = customer.to_ref()
        invoice.DueDate = "2026-12-31"
        invoice.Line.append(line)
        made.append(invoice.save(qb=qb))
    assert [i.DocNumber for i in made] == ["1001", "1002"]
    assert made[1].Line[0].Description == "Quarterly review for 0969 Ocean View Road"

    family = Invoice.where(f"CustomerRef IN ('{parent.Id}', '{job.Id}')", qb=qb)
    assert [i.Id for i in family] == [i.Id for i in made]
    assert [i.Id for i in Invoice.where("Balance > '50'", qb=qb)] == [made[1].Id]
    assert [i.Id for i in Invoice.filter(DocNumber="1001", qb=qb)] == [made[0].Id]
    assert [i.DueDate for i in Invoice.filter(DueDate="2026-12-31", qb=qb)] == ["2026-12-31"] * 2
    assert Invoice.count(qb=qb) == 2


def batch_and_cdc_scenario(qb: QuickBooks) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    first, second, clash = Customer(), Customer(), Customer()
    first.DisplayName = "Batch One"
    second.DisplayName = "Batch Two"
    clash.DisplayName = "cool cars"
    result = batch_create([first, second, clash], qb=qb)
    assert sorted(c.DisplayName for c in result.successes) == ["Batch One", "Batch Two"]
    assert [error.code for fault in result.faults for error in fault.Error] == ["6240"]

    changes = change_data_capture([Customer], since, qb=qb)
    assert sorted(c.DisplayName for c in changes.Customer) == ["Batch One", "Batch Two"]


async def test_python_quickbooks_customers(emulator: RunningEmulator) -> None:
    qb = await asyncio.to_thread(connect, emulator, emulator.refresh_token)
    await asyncio.to_thread(customers_scenario, qb)


async def test_python_quickbooks_invoices(emulator: RunningEmulator) -> None:
    qb = await asyncio.to_thread(connect, emulator, emulator.refresh_token)
    await asyncio.to_thread(invoice_scenario, qb)


async def test_python_quickbooks_items_and_invoice_queries(emulator: RunningEmulator) -> None:
    qb = await asyncio.to_thread(connect, emulator, emulator.refresh_token)
    await asyncio.to_thread(items_and_invoice_queries_scenario, qb)


async def test_python_quickbooks_batch_and_change_data_capture(emulator: RunningEmulator) -> None:
    qb = await asyncio.to_thread(connect, emulator, emulator.refresh_token)
    await asyncio.to_thread(batch_and_cdc_scenario, qb)


async def test_intuitlib_refresh_rotates_the_refresh_token(emulator: RunningEmulator) -> None:
    qb = await asyncio.to_thread(connect, emulator, emulator.refresh_token)
    assert qb.refresh_token != emulator.refresh_token
    assert qb.auth_client.expires_in == 3600
    # AuthClient fetches the discovery document when built: that too happens off the loop.
    reused = await asyncio.to_thread(
        AuthClient,
        emulator.client_id,
        emulator.client_secret,
        "http://127.0.0.1/cb",
        emulator.discovery_url,
    )
    await emulator.admin.token_rotation(previous_token_seconds=0)  # no 24-hour grace
    with pytest.raises(AuthClientError) as refused:
        await asyncio.to_thread(reused.refresh, emulator.refresh_token)
    assert refused.value.status_code == 400
    assert b"invalid_grant" in refused.value.content
