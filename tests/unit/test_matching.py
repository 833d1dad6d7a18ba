import random

import pytest

from qbsync.domain.accounts import (
    customer_may_be_linked,
    delink_reason,
    is_prospect,
    may_create_in_quickbooks,
)
from qbsync.domain.matching import Ambiguity, MatchResult, Named, match_by_name


def test_names_equal_ignoring_case_are_linked() -> None:
    result = match_by_name([Named("a1", "Acme Tax LLC")], [Named("c1", "ACME tax llc")])
    assert result.pairs == (("a1", "c1"),)
    assert result.ambiguities == ()


def test_casefold_not_just_lower() -> None:
    result = match_by_name([Named("a1", "Straße GmbH")], [Named("c1", "STRASSE GMBH")])
    assert result.pairs == (("a1", "c1"),)


def test_nothing_else_is_normalised() -> None:
    accounts = [Named("a1", "Acme Tax LLC"), Named("a2", "Beta Co"), Named("a3", "Gamma")]
    customers = [Named("c1", "Acme Tax LLC "), Named("c2", "Beta Co."), Named("c3", "Gamma  ")]
    assert match_by_name(accounts, customers).pairs == ()


def test_two_accounts_with_one_name_are_ambiguous_and_not_linked() -> None:
    result = match_by_name([Named("a1", "Acme"), Named("a2", "ACME")], [Named("c1", "acme")])
    assert result.pairs == ()
    assert result.ambiguities == (Ambiguity("acme", ("a1", "a2"), ("c1",)),)


def test_two_customers_with_one_name_are_ambiguous_and_not_linked() -> None:
    result = match_by_name([Named("a1", "Acme")], [Named("c2", "acme"), Named("c1", "Acme")])
    assert result.pairs == ()
    assert result.ambiguities == (Ambiguity("acme", ("a1",), ("c1", "c2")),)


def test_a_duplicate_name_with_no_counterpart_is_not_an_ambiguity() -> None:
    result = match_by_name([Named("a1", "Acme"), Named("a2", "acme")], [Named("c1", "Beta")])
    assert result == match_by_name([], [])


def test_ambiguity_does_not_stop_other_names_linking() -> None:
    result = match_by_name(
        [Named("a1", "Acme"), Named("a2", "acme"), Named("a3", "Beta")],
        [Named("c1", "ACME"), Named("c3", "beta")],
    )
    assert result.pairs == (("a3", "c3"),)
    assert len(result.ambiguities) == 1


def test_prospect_is_compared_case_insensitively() -> None:
    assert is_prospect("Prospect") and is_prospect("PROSPECT") and is_prospect(" prospect ")
    assert not is_prospect("Client") and not is_prospect(None) and not is_prospect("")


def test_prospects_and_archived_accounts_are_not_created() -> None:
    assert may_create_in_quickbooks("Client", archived=False)
    assert may_create_in_quickbooks(None, archived=False)
    assert not may_create_in_quickbooks("prospect", archived=False)
    assert not may_create_in_quickbooks("Client", archived=True)


def test_only_active_top_level_customers_may_be_linked() -> None:
    assert customer_may_be_linked(active=True, deleted=False, parent_id=None)
    assert not customer_may_be_linked(active=False, deleted=False, parent_id=None)
    assert not customer_may_be_linked(active=True, deleted=True, parent_id=None)
    assert not customer_may_be_linked(active=True, deleted=False, parent_id="7")


def test_links_go_when_either_side_goes_away() -> None:
    assert (
        delink_reason(account_archived=False, customer_active=True, customer_deleted=False) is None
    )
    assert delink_reason(True, True, False) == "account archived in Liscio"
    assert delink_reason(False, False, False) == "customer made inactive in QuickBooks"
    assert delink_reason(False, False, True) == "customer deleted or merged away in QuickBooks"


def _reference(accounts: list[Named], customers: list[Named]) -> MatchResult:
    """The rule spelled out naively: every id of each folded name on each side."""
    by_account: dict[str, list[str]] = {}
    by_customer: dict[str, list[str]] = {}
    for a in accounts:
        by_account.setdefault(a.name.casefold(), []).append(a.id)
    for c in customers:
        by_customer.setdefault(c.name.casefold(), []).append(c.id)
    pairs, ambiguities = [], []
    for folded in sorted(set(by_account) & set(by_customer)):
        a_ids, c_ids = by_account[folded], by_customer[folded]
        if len(a_ids) == 1 and len(c_ids) == 1:
            pairs.append((a_ids[0], c_ids[0]))
        else:
            ambiguities.append(Ambiguity(folded, tuple(sorted(a_ids)), tuple(sorted(c_ids))))
    return MatchResult(tuple(pairs), tuple(ambiguities))


@pytest.mark.parametrize("seed", range(200))
def test_random_firms_match_as_the_rule_says(seed: int) -> None:
    rng = random.Random(seed)
    names = ["Acme", "ACME", "acme ", "Beta", "beta", "Straße", "STRASSE", "Gamma", "Δelta"]
    accounts = [Named(f"a{i}", rng.choice(names)) for i in range(rng.randrange(0, 12))]
    customers = [Named(f"c{i}", rng.choice(names)) for i in range(rng.randrange(0, 12))]
    rng.shuffle(accounts)
    rng.shuffle(customers)
    assert match_by_name(accounts, customers) == _reference(accounts, customers)
