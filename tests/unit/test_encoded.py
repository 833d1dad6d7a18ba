"""The link events and fill commands encoded without pydantic are byte for byte the JSON
of their models (the shapes of `sync.links` and `liscio.account-commands` are contracts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from qbsync.db.links import Link
from qbsync.domain.fields import Address, to_json
from qbsync.sync.encoded import fill_command_json, link_event_json
from schemas import AccountCommand, AccountFields, LinkEvent
from schemas.messages import CommandSource

# Odd text: quotes, a backslash, control characters, non-ASCII, a line separator, a slash.
ODD = 'Ünïcode "quoted" \\ back\tslash\n\x01\x1f \u2028 / 😀'
MOMENTS = [
    datetime(2026, 11, 25, 20, 37, 23, 301106, tzinfo=UTC),
    datetime(2026, 11, 25, 20, 37, 23, tzinfo=UTC),  # no microseconds
    datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
    datetime.now(UTC),
]


def link(how: str = "auto", text: str = "x") -> Link:
    return Link(
        firm_id=f"firm-{text}",
        account_id=f"acc-{text}",
        realm_id="9130",
        customer_id=f"cust-{text}",
        how=how,
        linked_at=MOMENTS[0],
        first_synced_at=None,
    )


@pytest.mark.parametrize("at", MOMENTS)
@pytest.mark.parametrize("change", ["link.created", "link.removed"])
@pytest.mark.parametrize("how", ["auto", "manual", "created"])
@pytest.mark.parametrize("text", ["plain", ODD])
def test_link_event_is_the_models_json(at: datetime, change: Any, how: str, text: str) -> None:
    the_link = link(how, text)
    model = LinkEvent(
        event_id="6f1c",
        type=change,
        firm_id=the_link.firm_id,
        account_id=the_link.account_id,
        realm_id=the_link.realm_id,
        customer_id=the_link.customer_id,
        how=how,  # type: ignore[arg-type]
        reason=f"Sync Now: {text}",
        at=at,
    )
    encoded = link_event_json(the_link, "6f1c", change, f"Sync Now: {text}", at)
    assert encoded == model.model_dump_json(exclude_unset=True)


FILLS: list[dict[str, Any]] = [
    {"phone": "512-555-0100"},
    {"website": "https://example.com/a?b=c&d"},
    {"address": to_json(Address(line1="1 Main St", city="Austin", postal_code="78701"))},
    {"address": to_json(Address(line1=ODD, line2=ODD, country="US")), "phone": ODD},
    # the plan's order differs from AccountFields': the model's order wins
    {
        "website": "w.example",
        "phone": "512",
        "address": to_json(Address(state="TX", country="US")),
    },
]


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("at", MOMENTS)
@pytest.mark.parametrize("text", ["plain", ODD])
def test_fill_command_is_the_models_json(fill: dict[str, Any], at: datetime, text: str) -> None:
    the_link = link(text=text)
    model = AccountCommand(
        command_id="0123abcd",
        type="account.fill_fields",
        firm_id=the_link.firm_id,
        account_id=the_link.account_id,
        fields=AccountFields.model_validate(fill),
        source=CommandSource(realm_id=the_link.realm_id, customer_id=the_link.customer_id),
        issued_at=at,
    )
    encoded = fill_command_json(the_link, "0123abcd", fill, at)
    assert encoded == model.model_dump_json(exclude_unset=True)


def test_a_moment_with_another_offset_is_written_alike() -> None:
    # The writers pass datetime.now(UTC); a non-UTC offset would be written with its
    # offset by both, so the two still agree.
    at = datetime(2026, 11, 25, 20, 0, tzinfo=timezone(timedelta(hours=-6)))
    model = LinkEvent(
        event_id="e",
        type="link.created",
        firm_id="f",
        account_id="a",
        realm_id="r",
        customer_id="c",
        how="auto",
        reason="r",
        at=at,
    )
    the_link = Link("f", "a", "r", "c", "auto", at, None)
    assert link_event_json(the_link, "e", "link.created", "r", at) == model.model_dump_json(
        exclude_unset=True
    )
