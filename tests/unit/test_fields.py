"""The address parts named once for speed are the Address dataclass's fields."""

from __future__ import annotations

from dataclasses import fields

from qbsync.domain.fields import ADDRESS_PARTS, Address


def test_address_parts_are_the_address_fields_in_order() -> None:
    assert tuple(field.name for field in fields(Address)) == ADDRESS_PARTS


def test_an_address_round_trips_and_a_blank_one_is_no_value() -> None:
    raw = {"line1": " 1 Main St ", "city": "Springfield", "country": ""}
    address = Address.parse(raw)
    assert address is not None
    assert address.as_dict() == {
        "line1": "1 Main St",
        "line2": None,
        "city": "Springfield",
        "state": None,
        "postal_code": None,
        "country": None,
    }
    assert Address.parse({"line1": "  ", "city": None}) is None
