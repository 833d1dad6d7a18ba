"""The Sync Now benchmark's scenario and figures are derived, not guessed: check them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bench.sync_report import Figure, rate, seconds_between, table
from bench.sync_scenario import Scenario, account_event, customer_name, seeded_fields
from qbsync.domain.fields import Address, SyncedFields
from qbsync.domain.matching import Named, match_by_name
from qbsync.domain.rules import first_sync
from schemas import AccountEvent


def customer_fields(number: int) -> SyncedFields:
    """What the emulator's bulk seeding stores for customer `number` (seed.bulk_customers)."""
    present = seeded_fields(number)
    return SyncedFields(
        address=(
            Address(line1=f"{number} Market St.", city="Springfield", state="IL")
            if "address" in present
            else None
        ),
        phone=f"(217) 555-{number % 10000:04d}" if "phone" in present else None,
        website=f"https://customer{number}.example" if "website" in present else None,
    )


@pytest.mark.parametrize(("customers", "accounts"), [(10_000, 10_000), (3_000, 4_000)])
def test_the_expected_outcome_is_what_matching_and_the_first_sync_rules_give(
    customers: int, accounts: int
) -> None:
    scenario = Scenario(customers, accounts, first_customer_id=31)
    made = list(scenario.make_accounts())
    numbers = range(31, 31 + customers)
    result = match_by_name(
        [Named(a.account_id, a.name) for a in made],
        [Named(str(n), customer_name(n)) for n in numbers],
    )
    by_id = {a.account_id: a for a in made}
    writes = fills = 0
    for account_id, customer_id in result.pairs:
        account = by_id[account_id]
        plan = first_sync(
            SyncedFields(phone=account.phone, website=account.website),
            customer_fields(int(customer_id)),
        )
        writes += bool(plan.to_quickbooks)
        fills += bool(plan.to_liscio)
    expected = scenario.expected()

    assert len(made) == accounts
    assert len({a.account_id for a in made}) == accounts
    assert len(result.pairs) == expected.links
    assert len(result.ambiguities) == expected.ambiguities == accounts // 1000
    assert all(len(a.account_ids) == 2 for a in result.ambiguities)
    assert (writes, fills) == (expected.quickbooks_writes, expected.liscio_fills)


def test_half_the_accounts_match_a_customer_and_never_in_its_own_case() -> None:
    made = list(Scenario(1000, 1000).make_accounts())
    matching = [a for a in made if a.customer is not None]
    assert len(matching) == 500
    for account in matching:
        assert account.name != customer_name(account.customer or 0)
        assert account.name.casefold() == customer_name(account.customer or 0).casefold()


def test_account_events_follow_the_contract() -> None:
    account = next(iter(Scenario(10, 10).make_accounts()))
    raw = account_event("f-1", account, datetime(2026, 11, 25, 16, tzinfo=UTC))
    event = AccountEvent.model_validate_json(raw)
    assert event.type == "account.created"
    assert event.firm_id == "f-1"
    assert event.account.id == account.account_id
    assert json.loads(raw)["occurred_at"] == "2026-11-25T16:00:00Z"


def test_rates_and_spans() -> None:
    start = datetime(2026, 11, 25, 16, tzinfo=UTC)
    assert seconds_between(start, start + timedelta(seconds=2.5)) == 2.5
    assert seconds_between(10.0, 12.0) == 2.0
    assert rate(100_000, 4.0) == 25_000
    with pytest.raises(ValueError):
        rate(10, 0.0)


def test_figures_compare_rates_as_floors_and_memory_as_a_ceiling() -> None:
    slow = Figure("importer", 25_000, "/s", 50_000)
    fast = Figure("matcher", 30_000, "/s", 20_000)
    small = Figure("memory", 120.0, "MB", 300.0, at_least=False)
    big = Figure("memory", 300.0, "MB", 300.0, at_least=False)
    assert (slow.ratio, slow.met) == (0.5, False)
    assert (fast.ratio, fast.met) == (1.5, True)
    assert (small.ratio, small.met) == (0.4, True)
    assert big.met is False  # "under 300 MB": 300 is not under
    assert Figure("emulator", 250.0, "MB").met is None


def test_the_table_shows_every_figure_with_its_ratio() -> None:
    text = table([Figure("importer", 25_000, "/s", 50_000, detail="how")])
    header, rule, row = text.splitlines()
    assert header.split() == ["figure", "measured", "target", "ratio", "met", "how"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert "25,000 /s" in row and "≥ 50,000" in row and "0.50" in row and "NO" in row
