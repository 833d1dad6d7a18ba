"""The emulator's Customer, Item and Invoice rules over real HTTP, as QuickBooks applies them."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

from qbsync.emulator import RunningEmulator
from qbsync.emulator.clock import parse_time
from tests.support.qbo import QboTestClient, qbo_client

QBO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
RESPONSE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")


def fault_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"Fault", "time"}, body
    assert set(body["Fault"]) == {"Error", "type"}
    error: dict[str, Any] = body["Fault"]["Error"][0]
    assert set(error) == {"Message", "Detail", "code", "element"}
    return error


async def test_create_then_read_a_customer(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        response = await qbo.post(
            "customer",
            {
                "DisplayName": "  Acme Tax LLC ",
                "CompanyName": "Acme Tax LLC",
                "BillAddr": {
                    "Line1": "1 Main St",
                    "City": "Austin",
                    "CountrySubDivisionCode": "TX",
                },
                "PrimaryPhone": {"FreeFormNumber": "512-555-0100"},
                "WebAddr": {"URI": "https://acme.example"},
            },
            minorversion="75",
        )
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        assert RESPONSE_TIME.match(body["time"])
        created = body["Customer"]
        assert created["Id"] == "31"  # the sandbox realm holds 30 customers
        assert created["SyncToken"] == "0"
        assert created["DisplayName"] == "Acme Tax LLC"
        assert created["FullyQualifiedName"] == "Acme Tax LLC"
        assert created["Active"] is True and created["Job"] is False
        assert created["BillAddr"]["City"] == "Austin" and created["BillAddr"]["Id"]
        assert created["domain"] == "QBO" and created["sparse"] is False
        meta = created["MetaData"]
        assert QBO_TIME.match(meta["CreateTime"]) and meta["CreateTime"] == meta["LastUpdatedTime"]

        read = await qbo.get(f"customer/{created['Id']}", minorversion="75")
        assert read.status_code == 200
        assert read.json()["Customer"] == created

        second = await qbo.create_customer({"GivenName": "Ada", "FamilyName": "Lovelace"})
        assert second["Id"] == "32"
        assert second["DisplayName"] == "Ada Lovelace"  # derived from the name parts


async def test_sparse_update_changes_only_what_is_sent_and_bumps_sync_token(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        created = await qbo.create_customer(
            {"DisplayName": "Sparse Co", "PrimaryPhone": {"FreeFormNumber": "1"}}
        )
        response = await qbo.post(
            "customer",
            {
                "Id": created["Id"],
                "SyncToken": created["SyncToken"],
                "sparse": True,
                "WebAddr": {"URI": "https://sparse.example"},
            },
        )
        assert response.status_code == 200, response.text
        updated = response.json()["Customer"]
        assert updated["SyncToken"] == "1"
        assert updated["WebAddr"] == {"URI": "https://sparse.example"}
        assert updated["PrimaryPhone"] == {"FreeFormNumber": "1"}
        assert updated["MetaData"]["CreateTime"] == created["MetaData"]["CreateTime"]
        updated_at = parse_time(updated["MetaData"]["LastUpdatedTime"])
        assert updated_at >= parse_time(created["MetaData"]["LastUpdatedTime"])
        assert abs(parse_time(response.json()["time"]) - updated_at) < 1.0


async def test_full_update_clears_writable_fields_left_out(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        created = await qbo.create_customer(
            {"DisplayName": "Full Co", "PrimaryPhone": {"FreeFormNumber": "1"}, "Notes": "n"}
        )
        response = await qbo.post(
            "customer",
            {"Id": created["Id"], "SyncToken": "0", "DisplayName": "Full Co", "Notes": "m"},
        )
        assert response.status_code == 200, response.text
        updated = response.json()["Customer"]
        assert "PrimaryPhone" not in updated
        assert updated["Notes"] == "m"
        assert updated["Active"] is True
        assert updated["SyncToken"] == "1"


async def test_stale_sync_token_is_refused_with_5010(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        created = await qbo.create_customer({"DisplayName": "Stale Co"})
        change = {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "first"}
        assert (await qbo.post("customer", change)).status_code == 200
        stale = await qbo.post("customer", {**change, "Notes": "second"})
        assert stale.status_code == 400
        error = fault_of(stale)
        assert error["code"] == "5010" and error["Message"] == "Stale Object Error"
        assert stale.json()["Fault"]["type"] == "ValidationFault"
        current = (await qbo.get(f"customer/{created['Id']}")).json()["Customer"]
        assert current["Notes"] == "first" and current["SyncToken"] == "1"


async def test_display_names_are_unique_ignoring_case_among_customers_vendors_employees(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        first = await qbo.create_customer({"DisplayName": "Unique Name Inc"})
        duplicate = await qbo.post("customer", {"DisplayName": "UNIQUE name inc"})
        assert duplicate.status_code == 400
        error = fault_of(duplicate)
        assert error["code"] == "6240" and error["Message"] == "Duplicate Name Exists Error"
        assert f"Id={first['Id']}" in error["Detail"]

        vendor = await qbo.post("customer", {"DisplayName": "books by bessie"})
        assert fault_of(vendor)["code"] == "6240"
        employee = await qbo.post("customer", {"DisplayName": "Emily Platt"})
        assert fault_of(employee)["code"] == "6240"

        inactive_sandbox_customer = await qbo.post(
            "customer", {"DisplayName": "nimbus landscaping"}
        )
        assert fault_of(inactive_sandbox_customer)["code"] == "6240"

        other = await qbo.create_customer({"DisplayName": "Other Name Inc"})
        rename = {"Id": other["Id"], "SyncToken": "0", "sparse": True}
        clash = await qbo.post("customer", {**rename, "DisplayName": "unique NAME inc"})
        assert fault_of(clash)["code"] == "6240"
        recase = await qbo.post("customer", {**rename, "DisplayName": "OTHER name inc"})
        assert recase.status_code == 200
        assert recase.json()["Customer"]["DisplayName"] == "OTHER name inc"
        freed = await qbo.post("customer", {"DisplayName": "Other Name Inc."})
        assert freed.status_code == 200


async def test_reading_an_unknown_customer_is_610(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        response = await qbo.get("customer/99999")
        assert response.status_code == 400
        error = fault_of(response)
        assert error["code"] == "610" and error["Message"] == "Object Not Found"
        update = await qbo.post("customer", {"Id": "99999", "SyncToken": "0", "sparse": True})
        assert fault_of(update)["code"] == "610"


async def test_deactivated_customers_are_hidden_from_default_queries(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        created = await qbo.create_customer({"DisplayName": "Soon Inactive"})
        where = "where DisplayName = 'Soon Inactive'"
        assert len(await qbo.query_rows(f"select * from Customer {where}")) == 1
        response = await qbo.post(
            "customer", {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Active": False}
        )
        assert response.json()["Customer"]["Active"] is False
        assert await qbo.query_rows(f"select * from Customer {where}") == []
        both = await qbo.query_rows(f"select * from Customer {where} and Active IN (true, false)")
        assert [row["Id"] for row in both] == [created["Id"]]
        inactive = await qbo.query_rows("select * from Customer where Active = false")
        assert created["Id"] in [row["Id"] for row in inactive]
        assert (await qbo.get(f"customer/{created['Id']}")).json()["Customer"]["Active"] is False

        count = (await qbo.query("select count(*) from Customer")).json()["QueryResponse"]
        every = (
            await qbo.query("select count(*) from Customer where Active in (true, false)")
        ).json()["QueryResponse"]
        assert every["totalCount"] - count["totalCount"] == 4  # 3 seeded inactive + this one


async def test_requestid_replays_the_first_response_without_writing_again(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        body = {"DisplayName": "Idempotent LLC"}
        first = await qbo.post("customer", body, requestid="req-1")
        again = await qbo.post("customer", body, requestid="req-1")
        assert first.status_code == again.status_code == 200
        assert again.content == first.content
        matching = await qbo.query_rows(
            "select * from Customer where DisplayName = 'Idempotent LLC'"
        )
        assert len(matching) == 1

        customer = first.json()["Customer"]
        update = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "x"}
        updated = await qbo.post("customer", update, requestid="req-2")
        replayed = await qbo.post("customer", update, requestid="req-2")
        assert replayed.content == updated.content  # not a 5010 for the reused SyncToken
        assert (await emulator.admin.customer(emulator.realm_id, customer["Id"]) or {})[
            "SyncToken"
        ] == "1"

        new_request = await qbo.post("customer", body, requestid="req-3")
        assert fault_of(new_request)["code"] == "6240"


async def test_a_failed_write_is_not_remembered_for_its_requestid(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        existing = await qbo.create_customer({"DisplayName": "Taken"})
        change = {"Id": existing["Id"], "SyncToken": "7", "sparse": True, "Notes": "n"}
        assert fault_of(await qbo.post("customer", change, requestid="r"))["code"] == "5010"
        fixed = await qbo.post("customer", {**change, "SyncToken": "0"}, requestid="r")
        assert fixed.status_code == 200


async def test_sub_customers_carry_parent_job_level_and_qualified_name(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        parent = await qbo.create_customer({"DisplayName": "Parent Co"})
        child = await qbo.create_customer(
            {"DisplayName": "Project X", "Job": True, "ParentRef": {"value": parent["Id"]}}
        )
        assert child["Job"] is True
        assert child["ParentRef"] == {"value": parent["Id"]}
        assert child["Level"] == 1
        assert child["FullyQualifiedName"] == "Parent Co:Project X"
        jobs = await qbo.query_rows(f"select * from Customer where ParentRef = '{parent['Id']}'")
        assert [row["Id"] for row in jobs] == [child["Id"]]

        renamed = await qbo.post(
            "customer",
            {"Id": parent["Id"], "SyncToken": "0", "sparse": True, "DisplayName": "Parent Inc"},
        )
        assert renamed.status_code == 200
        child_now = (await qbo.get(f"customer/{child['Id']}")).json()["Customer"]
        assert child_now["FullyQualifiedName"] == "Parent Inc:Project X"

        orphan = await qbo.post(
            "customer", {"DisplayName": "Orphan", "ParentRef": {"value": "999"}}
        )
        assert fault_of(orphan)["code"] == "2500"

        seeded = await qbo.query_rows("select * from Customer where Job = true")
        assert [row["FullyQualifiedName"] for row in seeded if row["Id"] == "8"] == [
            "Freeman Sporting Goods:0969 Ocean View Road"
        ]


async def test_sandbox_realm_contents(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        active = await qbo.query_rows("select * from Customer maxresults 1000")
        every = await qbo.query_rows("select * from Customer where Active in (true,false)")
        assert (len(active), len(every)) == (27, 30)
        assert sum(1 for row in active if "BillAddr" in row) >= 20
        assert sum(1 for row in active if "WebAddr" in row) >= 5
        assert sum(1 for row in active if "PrimaryPhone" in row) >= 20
        items = await qbo.query_rows("select * from Item", "Item")
        assert len(items) == 6 and items[0]["Name"] == "Services"
        item = await qbo.get("item/2")
        assert item.json()["Item"]["Name"] == "Design"
        assert fault_of(await qbo.get("item/77"))["code"] == "610"


async def test_query_paging_over_http_with_maxresults_cap(emulator: RunningEmulator) -> None:
    await emulator.admin.bulk_customers(emulator.realm_id, 2500)
    async with qbo_client(emulator) as qbo:
        total = (await qbo.query("select count(*) from Customer")).json()["QueryResponse"]
        assert total == {"totalCount": 2527}
        seen: list[str] = []
        start = 1
        while True:
            response = await qbo.query(
                f"select * from Customer STARTPOSITION {start} MAXRESULTS 1000"
            )
            page = response.json()["QueryResponse"]
            rows = page.get("Customer", [])
            if not rows:
                assert page == {}
                break
            assert page["startPosition"] == start and page["maxResults"] == len(rows)
            seen.extend(row["Id"] for row in rows)
            start += len(rows)
        assert len(seen) == len(set(seen)) == 2527
        assert seen == sorted(seen, key=int)
        capped = await qbo.query("select * from Customer MAXRESULTS 5000")
        assert len(capped.json()["QueryResponse"]["Customer"]) == 1000


async def test_query_by_post_with_a_text_body(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        response = await qbo.post(
            "query",
            content="SELECT * FROM Customer WHERE DisplayName LIKE 'Cool%'",
            content_type="application/text",
            minorversion="75",
        )
        assert response.status_code == 200
        assert [row["DisplayName"] for row in response.json()["QueryResponse"]["Customer"]] == [
            "Cool Cars"
        ]


async def test_invoices_create_read_and_query_by_customer(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        customer = await qbo.create_customer(
            {"DisplayName": "Billed Co", "BillAddr": {"Line1": "9 Elm"}}
        )
        body = {
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "Amount": 150.0,
                    "Description": "Tax preparation",
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "2"}},
                },
                {
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"Qty": 2, "UnitPrice": 25},
                },
            ],
        }
        response = await qbo.post("invoice", body, requestid="inv-1")
        assert response.status_code == 200, response.text
        invoice = response.json()["Invoice"]
        assert invoice["Id"] == "1" and invoice["SyncToken"] == "0"
        assert invoice["TotalAmt"] == 200.0 and invoice["Balance"] == 200.0
        assert invoice["DocNumber"] == "1001"
        assert invoice["CustomerRef"] == {"value": customer["Id"], "name": "Billed Co"}
        assert invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {
            "value": "2",
            "name": "Design",
        }
        assert invoice["Line"][1]["SalesItemLineDetail"]["ItemRef"]["name"] == "Services"
        assert invoice["Line"][-1]["DetailType"] == "SubTotalLineDetail"
        assert invoice["BillAddr"]["Line1"] == "9 Elm"
        assert (await qbo.post("invoice", body, requestid="inv-1")).content == response.content

        read = await qbo.get("invoice/1")
        assert read.json()["Invoice"] == invoice
        found = await qbo.query_rows(
            f"select * from Invoice where CustomerRef = '{customer['Id']}'", "Invoice"
        )
        assert [row["Id"] for row in found] == ["1"]
        balance = (await qbo.get(f"customer/{customer['Id']}")).json()["Customer"]["Balance"]
        assert balance == 200.0

        unknown = await qbo.post("invoice", {**body, "CustomerRef": {"value": "4040"}})
        assert fault_of(unknown)["code"] == "2500"
        inactive = await qbo.post("invoice", {**body, "CustomerRef": {"value": "28"}})
        assert fault_of(inactive)["code"] == "610"
        no_lines = await qbo.post("invoice", {"CustomerRef": {"value": customer["Id"]}})
        assert fault_of(no_lines)["code"] == "2020"


async def test_invoices_are_queried_by_customers_balance_dates_and_number(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:

        async def invoice(customer_id: str, amount: float, **fields: Any) -> dict[str, Any]:
            line = {
                "Amount": amount,
                "Description": f"Work worth {amount}",
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
            body = {"CustomerRef": {"value": customer_id}, "Line": [line], **fields}
            response = await qbo.post("invoice", body)
            assert response.status_code == 200, response.text
            made: dict[str, Any] = response.json()["Invoice"]
            return made

        first = await invoice("1", 10, TxnDate="2026-01-05", DueDate="2026-02-04")
        second = await invoice("2", 20, TxnDate="2026-03-01")
        third = await invoice("3", 30, DocNumber="X-77")
        await emulator.admin.receive_payment_as_user(emulator.realm_id, second["Id"], 20)

        async def ids(where: str) -> list[str]:
            rows = await qbo.query_rows(f"select * from Invoice where {where}", "Invoice")
            return [row["Id"] for row in rows]

        assert await ids("CustomerRef IN ('1', '3', '99')") == [first["Id"], third["Id"]]
        assert await ids("Balance > '0'") == [first["Id"], third["Id"]]
        assert await ids("Balance = '0'") == [second["Id"]]
        assert await ids("TxnDate < '2026-02-01'") == [first["Id"]]
        assert await ids("DueDate = '2026-02-04'") == [first["Id"]]
        assert await ids("DocNumber = 'x-77'") == [third["Id"]]
        assert (first["DocNumber"], second["DocNumber"]) == ("1001", "1002")
        assert second["DueDate"] == "2026-03-31"  # 30 days after TxnDate by default
        assert first["Line"][0]["Description"] == "Work worth 10"
        paid = (await qbo.get(f"invoice/{second['Id']}")).json()["Invoice"]
        assert (paid["Balance"], paid["TotalAmt"], paid["SyncToken"]) == (0, 20.0, "1")


async def test_items_have_unique_names_a_type_and_an_income_account(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        (income,) = await qbo.query_rows(
            "select * from Account where AccountType = 'Income' and Name = 'Services'", "Account"
        )
        body = {
            "Name": "Bookkeeping",
            "Type": "Service",
            "IncomeAccountRef": {"value": income["Id"]},
        }
        response = await qbo.post("item", body, requestid="item-1")
        assert response.status_code == 200, response.text
        item = response.json()["Item"]
        assert (item["Name"], item["Type"], item["Active"], item["SyncToken"]) == (
            "Bookkeeping",
            "Service",
            True,
            "0",
        )
        assert item["IncomeAccountRef"] == {"value": income["Id"], "name": "Services"}
        assert (await qbo.post("item", body, requestid="item-1")).content == response.content

        duplicate = await qbo.post("item", {**body, "Name": "BOOKKEEPING"})
        assert fault_of(duplicate)["code"] == "6240"
        assert fault_of(await qbo.post("item", {**body, "Name": "services"}))["code"] == "6240"
        no_account = {"Name": "Advice", "Type": "Service"}
        assert fault_of(await qbo.post("item", no_account))["code"] == "2020"
        bad_account = {**no_account, "IncomeAccountRef": {"value": "999"}}
        assert fault_of(await qbo.post("item", bad_account))["code"] == "2500"
        assert fault_of(await qbo.post("item", {"Name": "Typeless"}))["code"] == "2020"
        magic = {**body, "Name": "Magic Wand", "Type": "Magic"}
        assert fault_of(await qbo.post("item", magic))["code"] == "2010"

        services = await qbo.query_rows(
            "select * from Item where Type = 'Service' and Name = 'Bookkeeping'", "Item"
        )
        assert [row["Id"] for row in services] == [item["Id"]]
        # made inactive, an item is renamed by QuickBooks, which frees its name
        gone = await qbo.post(
            "item", {"Id": item["Id"], "SyncToken": "0", "sparse": True, "Active": False}
        )
        assert gone.json()["Item"]["Name"] == "Bookkeeping (deleted)"
        again = await qbo.post("item", body)
        assert again.status_code == 200, again.text
        assert fault_of(await qbo.post("account", {"Name": "New"}))["code"] == "500"


async def cdc(qbo: QboTestClient, since: str, entities: str = "Customer") -> dict[str, Any]:
    response = await qbo.get("cdc", entities=entities, changedSince=since, minorversion="75")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_cdc_returns_changes_since_a_time_including_inactive_and_merged(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        start = (await qbo.query("select count(*) from Customer")).json()["time"]
        nothing = await cdc(qbo, start)
        assert nothing["CDCResponse"] == [{"QueryResponse": [{}]}]

        created = await qbo.create_customer({"DisplayName": "Changed One"})
        gone = await qbo.create_customer({"DisplayName": "Merged Away"})
        await qbo.post(
            "customer", {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Active": False}
        )
        await emulator.admin.merge_customers(emulator.realm_id, gone["Id"], "1")

        changes = await cdc(qbo, start)
        assert set(changes) == {"CDCResponse", "time"}
        response = changes["CDCResponse"][0]["QueryResponse"][0]
        by_id = {row["Id"]: row for row in response["Customer"]}
        assert set(by_id) == {created["Id"], gone["Id"], "1"}
        assert by_id[created["Id"]]["Active"] is False and by_id[created["Id"]]["SyncToken"] == "1"
        assert by_id[gone["Id"]]["status"] == "Deleted"
        assert set(by_id[gone["Id"]]) == {"domain", "status", "Id", "MetaData"}
        assert response["maxResults"] == 3

        # From 1 ms after the answer's time: `changedSince` includes its millisecond, in which
        # the merge above may have landed (as in test_quickbooks_client_emulator.py).
        mark_at = datetime.fromisoformat(changes["time"]) + timedelta(milliseconds=1)
        # A create within a millisecond of the answer (an in-process round trip can be that
        # fast) would fall before the mark: the clock passes it first.
        await asyncio.sleep(max(0.0, (mark_at - datetime.now(mark_at.tzinfo)).total_seconds()))
        await asyncio.sleep(0.001)  # past it, not at it
        mark = mark_at.isoformat()
        later = await qbo.create_customer({"DisplayName": "After The Mark"})
        newer = (await cdc(qbo, mark))["CDCResponse"][0]["QueryResponse"][0]["Customer"]
        assert [row["Id"] for row in newer] == [later["Id"]]

        both = await cdc(qbo, start, "Customer,Item")
        assert len(both["CDCResponse"][0]["QueryResponse"]) == 2
        assert both["CDCResponse"][0]["QueryResponse"][1] == {}


async def test_cdc_refuses_unknown_entities_and_look_backs_over_30_days(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        unknown = await qbo.get("cdc", entities="Spaceship", changedSince="2026-01-01")
        assert unknown.status_code == 400 and fault_of(unknown)["code"] == "2010"
        too_old = await qbo.get("cdc", entities="Customer", changedSince="2001-01-01T00:00:00Z")
        assert too_old.status_code == 400 and fault_of(too_old)["code"] == "4001"
        missing = await qbo.get("cdc", entities="Customer")
        assert fault_of(missing)["code"] == "2020"


async def test_batch_mixes_creates_updates_queries_and_per_item_faults(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        existing = await qbo.create_customer({"DisplayName": "Batch Existing"})
        request = {
            "BatchItemRequest": [
                {"bId": "1", "operation": "create", "Customer": {"DisplayName": "Batch New"}},
                {
                    "bId": "2",
                    "operation": "update",
                    "Customer": {
                        "Id": existing["Id"],
                        "SyncToken": "0",
                        "sparse": True,
                        "Notes": "batched",
                    },
                },
                {"bId": "3", "operation": "create", "Customer": {"DisplayName": "batch new"}},
                {"bId": "4", "Query": "select * from Customer where DisplayName = 'Batch New'"},
                {"bId": "5", "Query": "select * from Nothing"},
            ]
        }
        response = await qbo.post("batch", request, minorversion="75")
        assert response.status_code == 200, response.text
        answers = {item["bId"]: item for item in response.json()["BatchItemResponse"]}
        assert answers["1"]["Customer"]["DisplayName"] == "Batch New"
        assert answers["2"]["Customer"]["SyncToken"] == "1"
        assert answers["3"]["Fault"]["Error"][0]["code"] == "6240"
        assert answers["3"]["Fault"]["type"] == "ValidationFault"
        assert answers["4"]["QueryResponse"]["Customer"][0]["Id"] == answers["1"]["Customer"]["Id"]
        assert answers["5"]["Fault"]["Error"][0]["code"] == "4001"

        limits = await emulator.admin.limits(emulator.realm_id)
        # token grant not counted; create + batch of 5 items + this read of limits is admin
        assert limits["used_in_window"] == 1 + 5
        assert limits["batches_in_window"] == 1

        too_big = {
            "BatchItemRequest": [{"bId": str(n), "Query": "select * from Item"} for n in range(31)]
        }
        refused = await qbo.post("batch", too_big)
        assert refused.status_code == 400 and fault_of(refused)["code"] == "4002"
