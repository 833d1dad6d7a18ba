"""Linking accounts to customers by name (DOMAIN.md rule 1).

Names are equal when their `str.casefold()` forms are equal; nothing else is normalised.
A folded name shared by two or more unlinked accounts, or by two or more unlinked
customers, links nothing: it is reported as ambiguous for a person to resolve.
"""

from __future__ import annotations

from collections import defaultdict
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
    accounts_by_name: dict[str, list[str]] = defaultdict(list)
    for account in accounts:
        accounts_by_name[fold(account.name)].append(account.id)
    customers_by_name: dict[str, list[str]] = defaultdict(list)
    for customer in customers:
        customers_by_name[fold(customer.name)].append(customer.id)

    pairs: list[tuple[str, str]] = []
    ambiguities: list[Ambiguity] = []
    for folded in sorted(accounts_by_name.keys() & customers_by_name.keys()):
        account_ids, customer_ids = accounts_by_name[folded], customers_by_name[folded]
        if len(account_ids) == 1 and len(customer_ids) == 1:
            pairs.append((account_ids[0], customer_ids[0]))
        else:
            ambiguities.append(
                Ambiguity(folded, tuple(sorted(account_ids)), tuple(sorted(customer_ids)))
            )
    return MatchResult(tuple(pairs), tuple(ambiguities))
