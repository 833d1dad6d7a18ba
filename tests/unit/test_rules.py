"""The first-sync and subsequent-sync rules, every case of every field."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from qbsync.domain.fields import FIELD_NAMES, Address, FieldName, SyncedFields
from qbsync.domain.rules import FieldWrite, first_sync, subsequent_sync

VALUES: dict[FieldName, tuple[Any, Any]] = {
    "address": (
        Address(line1="1 Main St", city="Austin"),
        Address(line1="9 Elm Rd", city="Dallas"),
    ),
    "phone": ("512-555-0100", "512-555-0199"),
    "website": ("https://liscio.example", "https://qbo.example"),
}


def only(name: FieldName, value: Any) -> SyncedFields:
    return SyncedFields(**{name: value})


@pytest.mark.parametrize("name", FIELD_NAMES)
class TestFirstSync:
    def test_no_value_on_either_side_writes_nothing(self, name: FieldName) -> None:
        assert not first_sync(SyncedFields(), SyncedFields())

    def test_value_only_in_liscio_is_copied_to_quickbooks(self, name: FieldName) -> None:
        ours, _ = VALUES[name]
        plan = first_sync(only(name, ours), SyncedFields())
        assert plan.writes == (
            FieldWrite(name, "quickbooks", None, ours, "first sync: value only in Liscio"),
        )

    def test_value_only_in_quickbooks_is_copied_to_liscio(self, name: FieldName) -> None:
        _, theirs = VALUES[name]
        plan = first_sync(SyncedFields(), only(name, theirs))
        assert plan.writes == (
            FieldWrite(name, "liscio", None, theirs, "first sync: value only in QuickBooks"),
        )
        assert plan.to_quickbooks == {}

    def test_different_values_liscio_overwrites_quickbooks(self, name: FieldName) -> None:
        ours, theirs = VALUES[name]
        plan = first_sync(only(name, ours), only(name, theirs))
        assert plan.to_quickbooks == {name: ours}
        assert plan.to_liscio == {}

    def test_equal_values_write_nothing(self, name: FieldName) -> None:
        ours, _ = VALUES[name]
        assert not first_sync(only(name, ours), only(name, ours))


@pytest.mark.parametrize("name", FIELD_NAMES)
class TestSubsequentSync:
    def test_no_value_on_either_side_writes_nothing(self, name: FieldName) -> None:
        assert not subsequent_sync(SyncedFields(), SyncedFields())

    def test_value_only_in_quickbooks_changes_nothing(self, name: FieldName) -> None:
        _, theirs = VALUES[name]
        assert not subsequent_sync(SyncedFields(), only(name, theirs))

    def test_value_only_in_liscio_is_written_to_quickbooks(self, name: FieldName) -> None:
        ours, _ = VALUES[name]
        plan = subsequent_sync(only(name, ours), SyncedFields())
        assert plan.to_quickbooks == {name: ours}
        assert plan.to_liscio == {}

    def test_different_values_liscio_overwrites_quickbooks(self, name: FieldName) -> None:
        ours, theirs = VALUES[name]
        plan = subsequent_sync(only(name, ours), only(name, theirs))
        assert plan.writes == (
            FieldWrite(name, "quickbooks", theirs, ours, "Liscio's value overwrites"),
        )

    def test_equal_values_write_nothing(self, name: FieldName) -> None:
        ours, _ = VALUES[name]
        assert not subsequent_sync(only(name, ours), only(name, ours))


def test_quickbooks_edits_never_reach_liscio_in_subsequent_syncs() -> None:
    liscio = SyncedFields(phone="1")
    quickbooks = SyncedFields(address=Address(city="X"), phone="2", website="w")
    assert subsequent_sync(liscio, quickbooks).to_liscio == {}


def test_fields_are_decided_independently_in_one_plan() -> None:
    liscio = SyncedFields(phone="512", website=None, address=Address(city="Austin"))
    quickbooks = SyncedFields(phone=None, website="https://q", address=Address(city="Dallas"))
    plan = first_sync(liscio, quickbooks)
    assert plan.to_quickbooks == {"phone": "512", "address": Address(city="Austin")}
    assert plan.to_liscio == {"website": "https://q"}


class TestNoValue:
    @pytest.mark.parametrize("raw", [None, "", "   ", "\t\n"])
    def test_blank_text_has_no_value(self, raw: str | None) -> None:
        assert SyncedFields.parse(None, raw, raw) == SyncedFields()

    def test_an_address_with_only_blank_parts_has_no_value(self) -> None:
        assert Address.parse({"line1": " ", "city": "", "country": None}) is None

    def test_an_address_with_one_part_has_a_value(self) -> None:
        assert Address.parse({"postal_code": " 78701 "}) == Address(postal_code="78701")

    def test_surrounding_spaces_are_not_a_change(self) -> None:
        liscio = SyncedFields.parse({"line1": "1 Main St "}, " 512 ", "https://a ")
        quickbooks = SyncedFields.parse({"line1": "1 Main St"}, "512", "https://a")
        assert not first_sync(liscio, quickbooks)
        assert not subsequent_sync(liscio, quickbooks)

    def test_the_whole_address_is_one_field(self) -> None:
        liscio = SyncedFields(address=Address(line1="1 Main St"))
        quickbooks = SyncedFields(address=Address(line1="1 Main St", city="Austin"))
        plan = subsequent_sync(liscio, quickbooks)
        assert plan.to_quickbooks == {"address": Address(line1="1 Main St")}

    def test_case_differences_in_values_are_changes(self) -> None:
        plan = subsequent_sync(SyncedFields(website="https://A"), SyncedFields(website="https://a"))
        assert plan.to_quickbooks == {"website": "https://A"}


def test_an_address_as_a_dict_has_every_field_in_order() -> None:
    address = Address(line1="1 Main St", city="Austin", postal_code="78701")
    assert address.as_dict() == dataclasses.asdict(address)
    assert list(address.as_dict()) == [f.name for f in dataclasses.fields(Address)]


def test_an_address_is_parsed_from_every_part_of_its_dict() -> None:
    # Address.parse names the parts one by one: each one must reach its own field.
    names = [f.name for f in dataclasses.fields(Address)]
    raw = {name: f" {name} value " for name in names}
    parsed = Address.parse(raw)
    assert parsed is not None
    assert dataclasses.asdict(parsed) == {name: f"{name} value" for name in names}
