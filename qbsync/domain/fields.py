"""The three synced fields (address, phone, website) and what 'no value' means.

A field has no value when it is missing, null, or a string that is empty after trimming;
an address has no value when none of its parts has one. Values are compared after the
same trimming, so a stray space is never a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

FieldName = Literal["address", "phone", "website"]
FIELD_NAMES: tuple[FieldName, ...] = ("address", "phone", "website")


def text_value(raw: object) -> str | None:
    """The trimmed string, or None when there is no value."""
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


@dataclass(frozen=True)
class Address:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Address | None:
        """An address from its Liscio-shaped mapping, or None when it has no value."""
        if not raw:
            return None
        # Spelled out, like as_dict: an address is parsed for each side of every pair synced.
        get = raw.get
        address = cls(
            text_value(get("line1")),
            text_value(get("line2")),
            text_value(get("city")),
            text_value(get("state")),
            text_value(get("postal_code")),
            text_value(get("country")),
        )
        return address if any(address.as_dict().values()) else None

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in ADDRESS_PARTS}


ADDRESS_PARTS = ("line1", "line2", "city", "state", "postal_code", "country")
FieldValue = Address | str | None


@dataclass(frozen=True)
class SyncedFields:
    """One side's values of the synced fields, each already normalised (None = no value)."""

    address: Address | None = None
    phone: str | None = None
    website: str | None = None

    @classmethod
    def parse(
        cls, address: Mapping[str, Any] | None, phone: object, website: object
    ) -> SyncedFields:
        return cls(Address.parse(address), text_value(phone), text_value(website))

    def get(self, name: FieldName) -> FieldValue:
        value: FieldValue = getattr(self, name)
        return value


def to_json(value: FieldValue) -> Any:
    """A field value as it is stored and sent in messages."""
    return value.as_dict() if isinstance(value, Address) else value
