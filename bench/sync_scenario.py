"""The Sync Now benchmark's data: one realm of customers, one firm of Liscio accounts.

Customers are seeded in bulk by the emulator (`POST /_emulator/realms/R/bulk-customers`),
which names customer n "{prefix} {n:07d}" and gives even ids an address, ids divisible by 3
a phone and by 5 a website (`qbsync.emulator.seed.bulk_customers`). The accounts are made
here, so that with `accounts` = `customers` = N:

- half of the accounts (index i < N/2) carry the name of customer i + 1 in another case
  (upper, lower or swapped, in turn): names equal after `str.casefold()`, never as typed;
- one account in a thousand (`AMBIGUOUS_EVERY`, taken from the other half) carries, in yet
  another case, the name of an account of the first half: that name is then shared by two
  accounts and links nothing (an ambiguity for a person to resolve);
- the rest carry names no customer has.

Liscio's side of the synced fields, for a realistic first sync: matched accounts have no
address or phone (QuickBooks' values fill Liscio), and one in `WEBSITE_EVERY` has a
website, which Liscio writes to QuickBooks. Unmatched accounts have phones and addresses
that never meet a customer.

Everything the run should produce (links, ambiguities, first-sync writes and fills) is
derived here from the construction, not from the code under test, so the benchmark also
checks that the system did the whole job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

CUSTOMER_PREFIX = "Bench Customer"
AMBIGUOUS_EVERY = 1000
WEBSITE_EVERY = 20
CASE_VARIANTS: tuple[Callable[[str], str], ...] = (str.upper, str.lower, str.swapcase)


def customer_name(number: int, prefix: str = CUSTOMER_PREFIX) -> str:
    """The DisplayName the emulator's bulk seeding gives customer `number`."""
    return f"{prefix} {number:07d}"


def seeded_fields(number: int) -> set[str]:
    """The synced fields the emulator's bulk seeding gives customer `number`."""
    fields = set()
    if number % 2 == 0:
        fields.add("address")
    if number % 3 == 0:
        fields.add("phone")
    if number % 5 == 0:
        fields.add("website")
    return fields


@dataclass(frozen=True)
class Account:
    index: int
    name: str
    customer: int | None  # the customer whose name it carries (ignoring case), if any
    phone: str | None = None
    website: str | None = None
    address: dict[str, str] | None = None

    @property
    def account_id(self) -> str:
        return f"acct-{self.index:07d}"


@dataclass(frozen=True)
class Expected:
    links: int
    ambiguities: int
    ambiguous_accounts: int
    quickbooks_writes: int
    liscio_fills: int


@dataclass(frozen=True)
class Scenario:
    customers: int
    accounts: int
    first_customer_id: int = 1

    def __post_init__(self) -> None:
        if self.accounts < 2 or self.customers < self.accounts // 2:
            raise ValueError("need at least 2 accounts and a customer for half of them")

    @property
    def matched(self) -> int:
        return self.accounts // 2

    @property
    def duplicates(self) -> int:
        """Accounts of the second half that repeat a first-half name."""
        return min(self.accounts // AMBIGUOUS_EVERY, self.accounts - self.matched)

    def duplicated_index(self, k: int) -> int:
        """The first-half account whose name the k-th duplicate repeats (spread evenly)."""
        return (k * self.matched) // max(self.duplicates, 1) + 1

    def make_accounts(self) -> Iterator[Account]:
        for i in range(self.matched):
            number = self.first_customer_id + i
            variant = CASE_VARIANTS[i % len(CASE_VARIANTS)]
            website = f"https://liscio-{i}.example" if i % WEBSITE_EVERY == 0 else None
            yield Account(i, variant(customer_name(number)), number, website=website)
        duplicate_every = (self.accounts - self.matched) // max(self.duplicates, 1)
        for i in range(self.matched, self.accounts):
            offset = i - self.matched
            k, rest = divmod(offset, max(duplicate_every, 1))
            if rest == 0 and k < self.duplicates:
                j = self.duplicated_index(k)
                variant = CASE_VARIANTS[(j + 1) % len(CASE_VARIANTS)]
                yield Account(i, variant(customer_name(self.first_customer_id + j)), None)
                continue
            yield Account(
                i,
                f"Liscio Client {i:07d}",
                None,
                phone=f"512-555-{i % 10000:04d}" if i % 2 == 0 else None,
                address=(
                    {"line1": f"{i} Congress Ave", "city": "Austin", "state": "TX"}
                    if i % 3 == 0
                    else None
                ),
            )

    def expected(self) -> Expected:
        ambiguous = {self.duplicated_index(k) for k in range(self.duplicates)}
        writes = fills = 0
        for i in range(self.matched):
            if i in ambiguous:
                continue
            liscio_website = i % WEBSITE_EVERY == 0
            quickbooks = seeded_fields(self.first_customer_id + i)
            writes += liscio_website  # only Liscio has one, or Liscio's overwrites
            fills += bool(quickbooks - ({"website"} if liscio_website else set()))
        return Expected(
            links=self.matched - len(ambiguous),
            ambiguities=len(ambiguous),
            ambiguous_accounts=2 * len(ambiguous),
            quickbooks_writes=writes,
            liscio_fills=fills,
        )


def account_event(firm_id: str, account: Account, occurred_at: datetime) -> bytes:
    """An `account.created` AccountEvent (contract: CONTRACTS.md), encoded once up front so
    that producing measures Kafka, not JSON encoding."""
    value = {
        "event_id": f"{firm_id}:{account.account_id}:created",
        "type": "account.created",
        "occurred_at": occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "firm_id": firm_id,
        "account": {
            "id": account.account_id,
            "name": account.name,
            "status": "Client",
            "address": account.address,
            "phone": account.phone,
            "website": account.website,
            "contacts": [
                {
                    "id": f"{account.account_id}-c1",
                    "first_name": "Pat",
                    "last_name": f"Client {account.index}",
                    "email": f"pat{account.index}@client.example",
                }
            ],
        },
    }
    return json.dumps(value, separators=(",", ":")).encode()
