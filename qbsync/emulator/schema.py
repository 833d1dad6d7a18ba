"""The shapes of request bodies, checked the way QuickBooks' deserializer checks them.

QuickBooks answers 400 (code 2010, "Request has invalid or unsupported property") for
an unknown property or a value of the wrong type. It is lenient where real clients rely
on it: scalars become strings, `"true"`/`"false"` are booleans, numeric strings are
numbers, and an empty string in a date or amount means "not given" (python-quickbooks
sends `"TxnDate": ""`). `null` and empty strings mean "absent" throughout; `normalize`
returns None for them so stored entities never carry empty values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qbsync.emulator.errors import invalid_property

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _wrong_type(path: str, expected: str, value: Any) -> Exception:
    kind = type(value).__name__
    return invalid_property(
        f"{path} (cannot deserialize a {kind} as {expected})", element=path.rsplit(".", 1)[-1]
    )


class FieldType:
    """Validates one JSON value and returns its stored form (None when absent)."""

    def normalize(self, value: Any, path: str) -> Any:
        raise NotImplementedError


class Text(FieldType):
    def normalize(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise _wrong_type(path, "a string", value)
        return value if value.strip() else None


class Boolean(FieldType):
    def normalize(self, value: Any, path: str) -> bool | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _wrong_type(path, "a boolean", value)


class Number(FieldType):
    def normalize(self, value: Any, path: str) -> int | float | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise _wrong_type(path, "a number", value)
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise _wrong_type(path, "a number", value) from None
            return int(number) if number.is_integer() and "." not in value else number
        raise _wrong_type(path, "a number", value)


class Date(FieldType):
    def normalize(self, value: Any, path: str) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str) and _DATE.match(value):
            return value
        raise _wrong_type(path, "a date (yyyy-MM-dd)", value)


class AnyValue(FieldType):
    """Read-only or free-form parts QuickBooks ignores on input (MetaData, CustomField)."""

    def normalize(self, value: Any, path: str) -> Any:
        return value


@dataclass
class Struct(FieldType):
    name: str
    fields: Mapping[str, FieldType]

    def normalize(self, value: Any, path: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _wrong_type(path, f"an object ({self.name})", value)
        result: dict[str, Any] = {}
        for key, item in value.items():
            field_type = self.fields.get(key)
            if field_type is None:
                raise invalid_property(
                    f'Unrecognized field "{key}" (class {self.name}) at {path}', element=key
                )
            normalized = field_type.normalize(item, f"{path}.{key}" if path else key)
            if normalized is not None:
                result[key] = normalized
        return result or None


@dataclass
class ListOf(FieldType):
    item: FieldType
    keep_empty: bool = field(default=False)

    def normalize(self, value: Any, path: str) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise _wrong_type(path, "an array", value)
        items = [self.item.normalize(element, f"{path}[{i}]") for i, element in enumerate(value)]
        kept = [item for item in items if item is not None]
        return kept if kept or self.keep_empty else None


TEXT = Text()
BOOLEAN = Boolean()
NUMBER = Number()
DATE = Date()
ANY = AnyValue()

REF = Struct("ReferenceType", {"value": TEXT, "name": TEXT, "type": TEXT})
ADDRESS = Struct(
    "PhysicalAddress",
    {
        "Id": TEXT,
        "Line1": TEXT,
        "Line2": TEXT,
        "Line3": TEXT,
        "Line4": TEXT,
        "Line5": TEXT,
        "City": TEXT,
        "CountrySubDivisionCode": TEXT,
        "Country": TEXT,
        "CountryCode": TEXT,
        "County": TEXT,
        "PostalCode": TEXT,
        "PostalCodeSuffix": TEXT,
        "Lat": TEXT,
        "Long": TEXT,
        "Note": TEXT,
        "Tag": TEXT,
    },
)
PHONE = Struct(
    "TelephoneNumber",
    {"FreeFormNumber": TEXT, "Id": TEXT, "DeviceType": TEXT, "CountryCode": TEXT, "Tag": TEXT},
)
EMAIL = Struct("EmailAddress", {"Address": TEXT, "Id": TEXT, "Default": BOOLEAN, "Tag": TEXT})
WEB = Struct("WebSiteAddress", {"URI": TEXT, "Id": TEXT, "Default": BOOLEAN, "Tag": TEXT})
