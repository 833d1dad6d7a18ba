"""The emulator's query language: parsing, validation and evaluation (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from qbsync.emulator import query
from qbsync.emulator.errors import QboFault


def customer(
    customer_id: int,
    name: str,
    *,
    active: bool = True,
    city: str | None = None,
    balance: float = 0,
    parent: str | None = None,
    updated: str = "2026-11-20T10:00:00-08:00",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Id": str(customer_id),
        "DisplayName": name,
        "Active": active,
        "Balance": balance,
        "Job": parent is not None,
        "MetaData": {"CreateTime": updated, "LastUpdatedTime": updated},
    }
    if city:
        row["BillAddr"] = {"City": city}
    if parent:
        row["ParentRef"] = {"value": parent}
    return row


ROWS = [
    customer(1, "Amy's Bird Sanctuary", city="Bayshore", balance=239),
    customer(2, "Bill's Windsurf Shop", city="Half Moon Bay", balance=85),
    customer(3, "cool cars", updated="2026-11-24T09:00:00-08:00"),
    customer(4, "Diego Rodriguez", active=False, balance=10),
    customer(5, "0969 Ocean View Road", parent="3"),
    customer(10, "Zed O'Brien", city="Bayshore", balance=-5),
]


def ids(text: str, rows: list[dict[str, Any]] = ROWS) -> list[str]:
    return [row["Id"] for row in query.evaluate(query.parse(text), rows).rows]


def parse_fault(text: str) -> QboFault:
    with pytest.raises(QboFault) as caught:
        query.parse(text)
    return caught.value


def test_select_star_returns_active_rows_in_id_order() -> None:
    assert ids("select * from Customer") == ["1", "2", "3", "5", "10"]


def test_keywords_entity_and_field_names_are_case_insensitive() -> None:
    assert ids("SELECT * FROM customer WHERE displayname = 'Cool Cars'") == ["3"]
    assert ids("SeLeCt * FrOm CUSTOMER wHeRe DISPLAYNAME = 'cool cars'") == ["3"]


def test_string_equality_ignores_case() -> None:
    assert ids("select * from Customer where DisplayName = 'COOL CARS'") == ["3"]
    assert ids("select * from Customer where DisplayName = 'amy\\'s bird sanctuary'") == ["1"]


def test_escaped_quote_in_literal() -> None:
    assert ids("select * from Customer where DisplayName = 'Zed O\\'Brien'") == ["10"]


def test_inactive_rows_are_hidden_unless_the_query_filters_on_active() -> None:
    assert "4" not in ids("select * from Customer")
    assert ids("select * from Customer where Active = false") == ["4"]
    assert ids("select * from Customer where Active IN (true, false)") == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "10",
    ]
    assert "4" in ids("select * from Customer where active in (TRUE,FALSE)")


def test_in_list_with_ids_as_strings() -> None:
    assert ids("select * from Customer where Id IN ('1', '10', '99')") == ["1", "10"]


def test_like_with_percent_wildcards_ignores_case() -> None:
    assert ids("select * from Customer where DisplayName LIKE 'b%'") == ["2"]
    assert ids("select * from Customer where DisplayName like '%s%'") == ["1", "2", "3"]
    assert ids("select * from Customer where DisplayName LIKE '%road'") == ["5"]
    assert ids("select * from Customer where DisplayName LIKE 'cool cars'") == ["3"]


def test_and_combines_conditions() -> None:
    text = "select * from Customer where BillAddr.City = 'Bayshore' and Balance > 0"
    assert ids(text) == ["1"]


def test_numeric_comparisons() -> None:
    assert ids("select * from Customer where Balance >= 85") == ["1", "2"]
    assert ids("select * from Customer where Balance < 0") == ["10"]
    assert ids("select * from Customer where Balance != 0") == ["1", "2", "10"]
    assert ids("select * from Customer where Balance <> 0") == ["1", "2", "10"]


def test_id_comparisons_are_numeric() -> None:
    assert ids("select * from Customer where Id > '3'") == ["5", "10"]


def test_ref_fields_compare_their_value() -> None:
    assert ids("select * from Customer where ParentRef = '3'") == ["5"]
    assert ids("select * from Customer where Job = true") == ["5"]


def test_metadata_times_compare_as_instants_across_offsets() -> None:
    text = "select * from Customer where MetaData.LastUpdatedTime > '2026-11-24T16:30:00Z'"
    assert ids(text) == ["3"]
    text = "select * from Customer where MetaData.LastUpdatedTime >= '2026-11-24'"
    assert ids(text) == ["3"]


def test_orderby_ascending_descending_and_order_by_spelling() -> None:
    assert ids("select * from Customer orderby DisplayName") == ["5", "1", "2", "3", "10"]
    assert ids("select * from Customer ORDERBY DisplayName DESC") == ["10", "3", "2", "1", "5"]
    assert ids("select * from Customer ORDER BY Balance desc, Id") == ["1", "2", "3", "5", "10"]


def test_orderby_puts_rows_without_the_field_last() -> None:
    ordered = ids("select * from Customer orderby BillAddr.City")
    assert ordered[:3] == ["1", "10", "2"]
    assert set(ordered[3:]) == {"3", "5"}


def test_startposition_and_maxresults_page_through_rows() -> None:
    rows = [customer(n, f"Customer {n:04d}") for n in range(1, 2501)]
    first = query.evaluate(query.parse("select * from Customer STARTPOSITION 1 MAXRESULTS 3"), rows)
    assert [row["Id"] for row in first.rows] == ["1", "2", "3"]
    page = query.evaluate(
        query.parse("select * from Customer startposition 1001 maxresults 1000"), rows
    )
    assert len(page.rows) == 1000 and page.rows[0]["Id"] == "1001"
    assert query.response(page)["startPosition"] == 1001
    assert query.response(page)["maxResults"] == 1000


def test_maxresults_is_capped_at_1000_and_defaults_to_100() -> None:
    rows = [customer(n, f"Customer {n:04d}") for n in range(1, 1501)]
    capped = query.evaluate(query.parse("select * from Customer MAXRESULTS 5000"), rows)
    assert len(capped.rows) == 1000
    default = query.evaluate(query.parse("select * from Customer"), rows)
    assert len(default.rows) == 100


def test_maxresults_before_startposition_is_accepted() -> None:
    assert ids("select * from Customer MAXRESULTS 2 STARTPOSITION 2") == ["2", "3"]


def test_count_star_counts_every_matching_row() -> None:
    result = query.evaluate(query.parse("select count(*) from Customer"), ROWS)
    assert query.response(result) == {"totalCount": 5}
    text = "SELECT COUNT(*) FROM Customer WHERE Active IN (true, false)"
    assert query.response(query.evaluate(query.parse(text), ROWS)) == {"totalCount": 6}


def test_empty_result_is_an_empty_query_response() -> None:
    result = query.evaluate(query.parse("select * from Customer where Id = '999'"), ROWS)
    assert query.response(result) == {}


def test_selected_fields_project_rows() -> None:
    result = query.evaluate(query.parse("select Id, DisplayName from Customer"), ROWS)
    assert result.rows[0] == {
        "Id": "1",
        "DisplayName": "Amy's Bird Sanctuary",
        "domain": "QBO",
        "sparse": True,
    }


def test_star_with_extra_fields_returns_whole_rows() -> None:
    items = [{"Id": "1", "Name": "Services", "Active": True, "Sku": "S-1"}]
    result = query.evaluate(query.parse("SELECT *, Sku FROM Item"), items)
    assert result.rows == items


def test_invoices_are_never_hidden_and_filter_by_customer_ref() -> None:
    invoices = [
        {"Id": "1", "CustomerRef": {"value": "3", "name": "Cool Cars"}, "TotalAmt": 10},
        {"Id": "2", "CustomerRef": {"value": "30", "name": "Other"}, "TotalAmt": 20},
    ]
    parsed = query.parse("select * from Invoice where CustomerRef = '3'")
    assert [row["Id"] for row in query.evaluate(parsed, invoices).rows] == ["1"]
    parsed = query.parse("select * from Invoice where CustomerRef IN ('3', '30')")
    assert [row["Id"] for row in query.evaluate(parsed, invoices).rows] == ["1", "2"]


def test_trailing_semicolon_is_accepted() -> None:
    assert ids("select * from Customer where Id = '1';") == ["1"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "select",
        "select * from",
        "select * Customer",
        "delete from Customer",
        "select * from Customer where",
        "select * from Customer where DisplayName",
        "select * from Customer where DisplayName = ",
        "select * from Customer where DisplayName = 'unterminated",
        "select * from Customer where DisplayName == 'x'",
        "select * from Customer where Id IN ()",
        "select * from Customer where Id IN ('1'",
        "select * from Customer where DisplayName LIKE 5",
        "select * from Customer where Active = true OR Active = false",
        "select * from Customer STARTPOSITION x",
        "select * from Customer MAXRESULTS 1.5",
        "select * from Customer orderby",
        "select count( from Customer",
        "select * from Customer where DisplayName = 'a' extra",
        'select * from Customer where DisplayName = "double"',
        "select * from Customer where # = 1",
    ],
)
def test_unparseable_queries_are_query_parser_errors(text: str) -> None:
    fault = parse_fault(text)
    assert fault.code == "4000"
    assert fault.status == 400
    assert fault.detail.startswith("QueryParserError")
    assert fault.body()["Fault"]["type"] == "ValidationFault"


def test_unknown_entity_and_property_are_query_validation_errors() -> None:
    assert parse_fault("select * from Vendor").code == "4001"
    fault = parse_fault("select * from Customer where Nickname = 'x'")
    assert fault.code == "4001" and "Nickname" in fault.detail
    assert parse_fault("select * from Customer orderby Nope").code == "4001"
