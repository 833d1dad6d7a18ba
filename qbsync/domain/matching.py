"""Linking accounts to customers by name (DOMAIN.md rule 1).

Names are equal when their `str.casefold()` forms are equal; nothing else is normalised.
A folded name shared by two or more unlinked accounts, or by two or more unlinked
customers, links nothing: it is reported as ambiguous for a person to resolve.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def fold(name: str) -> str:
    return name.casefold()


@dataclass(frozen=True)
class Named:
    id: str
    name: str


@dataclass(frozen=True)
class Ambiguity:
    folded_name: str
    account_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]


@dataclass(frozen=True)
class MatchResult:
    pairs: tuple[tuple[str, str], ...]  # (account_id, customer_id)
    ambiguities: tuple[Ambiguity, ...]


def match_by_name(accounts: Iterable[Named], customers: Iterable[Named]) -> MatchResult:
    """Pair unlinked accounts with unlinked customers. Both inputs must be unlinked and
    eligible already (see accounts.py); the result is ordered for reproducibility."""
    account_ids, shared_by_accounts = _by_folded_name(accounts)
    customer_ids, shared_by_customers = _by_folded_name(customers)

    pairs: list[tuple[str, str]] = []
    ambiguities: list[Ambiguity] = []
    for folded in sorted(account_ids.keys() & customer_ids.keys()):
        accounts_named = shared_by_accounts.get(folded)
        customers_named = shared_by_customers.get(folded)
        if accounts_named is None and customers_named is None:
            pairs.append((account_ids[folded], customer_ids[folded]))
        else:
            ambiguities.append(
                Ambiguity(
                    folded,
                    tuple(sorted(accounts_named or [account_ids[folded]])),
                    tuple(sorted(customers_named or [customer_ids[folded]])),
                )
            )
    return MatchResult(tuple(pairs), tuple(ambiguities))


def _by_folded_name(named: Iterable[Named]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The first id of each folded name, and every id of the names more than one has: most
    names are unique, so no list is made for them (a firm has 100,000 names)."""
    first: dict[str, str] = {}
    shared: dict[str, list[str]] = {}
    for item in named:
        folded = fold(item.name)
        if folded in first:
            shared.setdefault(folded, [first[folded]]).append(item.id)
        else:
            first[folded] = item.id
    return first, shared
