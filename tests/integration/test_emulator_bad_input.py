"""Bad input gets QuickBooks' 400 with a Fault body from the emulator, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qbsync.emulator import RunningEmulator
from tests.support.qbo import qbo_client

LONG_NAME = "x" * 501

# (case, method, path, JSON body or raw text, query params, expected code)
CASES: list[tuple[str, str, str, Any, dict[str, str], str]] = [
    ("malformed json", "POST", "customer", b'{"DisplayName": ', {}, "2010"),
    ("json array", "POST", "customer", [1, 2], {}, "2010"),
    ("json string", "POST", "customer", "just text", {}, "2010"),
    ("empty body", "POST", "customer", b"", {}, "2010"),
    ("not utf-8", "POST", "customer", b"\xff\xfe\x00", {}, "2010"),
    ("unknown field", "POST", "customer", {"DisplayName": "A", "Nickname": "a"}, {}, "2010"),
    (
        "unknown nested",
        "POST",
        "customer",
        {"DisplayName": "A", "BillAddr": {"Zip": "1"}},
        {},
        "2010",
    ),
    ("name is an object", "POST", "customer", {"DisplayName": {"first": "A"}}, {}, "2010"),
    ("name is a list", "POST", "customer", {"DisplayName": ["A"]}, {}, "2010"),
    ("active is text", "POST", "customer", {"DisplayName": "A", "Active": "maybe"}, {}, "2010"),
    ("address is text", "POST", "customer", {"DisplayName": "A", "BillAddr": "1 Main"}, {}, "2010"),
    ("phone is a list", "POST", "customer", {"DisplayName": "A", "PrimaryPhone": []}, {}, "2010"),
    ("balance is text", "POST", "customer", {"DisplayName": "A", "Balance": "lots"}, {}, "2010"),
    (
        "sparse is text",
        "POST",
        "customer",
        {"Id": "1", "SyncToken": "0", "sparse": "yes"},
        {},
        "2010",
    ),
    ("bad date", "POST", "customer", {"DisplayName": "A", "OpenBalanceDate": "May 1"}, {}, "2010"),
    ("no name at all", "POST", "customer", {"CompanyName": "Only Company"}, {}, "2020"),
    ("blank name", "POST", "customer", {"DisplayName": "   "}, {}, "2020"),
    ("update without token", "POST", "customer", {"Id": "1", "sparse": True}, {}, "2020"),
    ("update unknown id", "POST", "customer", {"Id": "777", "SyncToken": "0"}, {}, "610"),
    (
        "token not a number",
        "POST",
        "customer",
        {"Id": "1", "SyncToken": "abc", "sparse": True},
        {},
        "5010",
    ),
    ("name too long", "POST", "customer", {"DisplayName": LONG_NAME}, {}, "6000"),
    ("name with colon", "POST", "customer", {"DisplayName": "A:B"}, {}, "6000"),
    (
        "parent is itself",
        "POST",
        "customer",
        {"Id": "1", "SyncToken": "0", "sparse": True, "ParentRef": {"value": "1"}},
        {},
        "6000",
    ),
    (
        "parent without value",
        "POST",
        "customer",
        {"DisplayName": "A", "ParentRef": {"name": "P"}},
        {},
        "2020",
    ),
    (
        "delete a customer",
        "POST",
        "customer",
        {"Id": "1", "SyncToken": "0"},
        {"operation": "delete"},
        "500",
    ),
    ("invoice no customer", "POST", "invoice", {"Line": []}, {}, "2020"),
    (
        "invoice lines not a list",
        "POST",
        "invoice",
        {"CustomerRef": {"value": "1"}, "Line": {}},
        {},
        "2010",
    ),
    (
        "invoice line no type",
        "POST",
        "invoice",
        {"CustomerRef": {"value": "1"}, "Line": [{"Amount": 1}]},
        {},
        "2020",
    ),
    (
        "invoice unknown item",
        "POST",
        "invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "Amount": 1,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "99"}},
                }
            ],
        },
        {},
        "2500",
    ),
    (
        "invoice amount text",
        "POST",
        "invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [{"Amount": "ten", "DetailType": "SalesItemLineDetail"}],
        },
        {},
        "2010",
    ),
    (
        "invoice no amount",
        "POST",
        "invoice",
        {"CustomerRef": {"value": "1"}, "Line": [{"DetailType": "SalesItemLineDetail"}]},
        {},
        "2020",
    ),
    ("invoice unknown id", "GET", "invoice/42", None, {}, "610"),
    ("query garbage", "GET", "query", None, {"query": "hello world"}, "4000"),
    ("query missing", "GET", "query", None, {}, "4000"),
    ("query empty post", "POST", "query", b"", {}, "4000"),
    ("query unknown entity", "GET", "query", None, {"query": "select * from Dragon"}, "4001"),
    (
        "query bad field",
        "GET",
        "query",
        None,
        {"query": "select * from Customer where Foo = 1"},
        "4001",
    ),
    (
        "query bad number",
        "GET",
        "query",
        None,
        {"query": "select * from Customer maxresults -"},
        "4000",
    ),
    ("cdc missing entities", "GET", "cdc", None, {"changedSince": "2026-11-01"}, "2020"),
    (
        "cdc bad date",
        "GET",
        "cdc",
        None,
        {"entities": "Customer", "changedSince": "yesterday"},
        "2010",
    ),
    ("batch not an object", "POST", "batch", [1], {}, "2020"),
    ("batch empty", "POST", "batch", {"BatchItemRequest": []}, {}, "2020"),
    ("batch malformed", "POST", "batch", b"{{", {}, "2010"),
    ("unsupported entity", "POST", "vendor", {"DisplayName": "V"}, {}, "500"),
    ("unsupported read", "GET", "vendor/1", None, {}, "500"),
    ("read without id", "GET", "customer", None, {}, "500"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_input_is_a_400_fault(
    emulator: RunningEmulator,
    method: str,
    path: str,
    body: Any,
    params: dict[str, str],
    code: str,
) -> None:
    async with qbo_client(emulator) as qbo:
        if method == "GET":
            response = await qbo.get(path, **params)
        else:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = await qbo.post(path, content=raw, **params)
    assert response.status_code == 400, response.text
    fault = response.json()["Fault"]
    assert fault["type"] == "ValidationFault"
    assert fault["Error"][0]["code"] == code, fault
    assert fault["Error"][0]["Message"] and fault["Error"][0]["Detail"]


async def test_batch_items_with_bad_input_fault_one_by_one(emulator: RunningEmulator) -> None:
    request = {
        "BatchItemRequest": [
            {"operation": "create", "Customer": {"DisplayName": "No bId"}},
            {"bId": "2", "operation": "create", "Customer": {"DisplayName": 5, "Nope": 1}},
            {"bId": "3", "operation": "explode", "Customer": {"DisplayName": "X"}},
            {"bId": "4", "operation": "create", "Vendor": {"DisplayName": "V"}},
            {"bId": "5", "operation": "update", "Customer": {"DisplayName": "No Id"}},
            {"bId": "6", "Query": 42},
            "not an object",
            {"bId": "8", "operation": "create", "Customer": {"DisplayName": "Fine"}},
        ]
    }
    async with qbo_client(emulator) as qbo:
        response = await qbo.post("batch", request)
    assert response.status_code == 200
    answers = response.json()["BatchItemResponse"]
    codes = [item.get("Fault", {}).get("Error", [{}])[0].get("code") for item in answers]
    assert codes == ["2020", "2010", "500", "2010", "2020", "4000", "2020", None]
    assert answers[-1]["Customer"]["DisplayName"] == "Fine"
