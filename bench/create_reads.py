"""Benchmark: QuickBooks calls per create of a new Liscio account (issue 15, "reads spent
like money").

The pusher's create use case (`qbsync.sync.creating.create_or_link`) on the in-memory unit
of work and the real QuickBooksClient against the emulator in process, for `--new` accounts
whose name QuickBooks does not have and `--taken` accounts whose name an unlinked
QuickBooks customer has (those are linked, not created). Counts come from the emulator's
request log: GETs are QuickBooks' metered reads (query, read, CDC), POSTs its writes.

    .venv/bin/python -m bench.create_reads            # prints JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from qbsync.emulator import EmulatorConfig, running_emulator
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.tokens import InMemoryTokenStore
from qbsync.sync import copies
from qbsync.sync.creating import create_or_link
from tests.support.accounts import account_event
from tests.support.memory_uow import MemoryUnitOfWork

FIRM = "firm-bench"


async def run(new: int, taken: int) -> dict[str, Any]:
    async with running_emulator(EmulatorConfig()) as emulator:
        realm = await emulator.admin.create_realm(contents="empty")
        realm_id = realm["realm_id"]
        for n in range(taken):
            await emulator.admin.create_customer_as_user(
                realm_id, {"DisplayName": f"Taken Name {n:04d}"}
            )
        client = QuickBooksClient(
            base_url=emulator.base_url,
            token_url=emulator.token_url,
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
            tokens=InMemoryTokenStore({realm_id: realm["refresh_token"]}),
        )
        uow = MemoryUnitOfWork()
        uow.connect(FIRM, realm_id)
        try:
            figures = {}
            for kind, count, name in (
                ("new_name", new, "Brand New Client {n:04d}"),
                ("taken_name", taken, "taken name {n:04d}"),
            ):
                events = [
                    account_event(FIRM, f"{kind}-{n}", name.format(n=n), kind="account.created")
                    for n in range(count)
                ]
                await copies.keep_accounts(uow, events)
                await emulator.admin.clear_requests(realm_id)
                outcomes: dict[str, int] = {}
                for created in events:
                    outcome = await create_or_link(
                        uow, client, FIRM, realm_id, created.account.id, created.event_id
                    )
                    outcomes[outcome.outcome] = outcomes.get(outcome.outcome, 0) + 1
                calls = await emulator.admin.requests(realm_id)
                reads = sum(1 for c in calls if c["method"] == "GET")
                writes = sum(1 for c in calls if c["method"] == "POST")
                figures[kind] = {
                    "accounts": count,
                    "outcomes": outcomes,
                    "reads_per_create": round(reads / max(count, 1), 3),
                    "writes_per_create": round(writes / max(count, 1), 3),
                }
            customers = await emulator.admin.customers(realm_id)
            figures["quickbooks_customers_after"] = {"value": len(customers)}
            figures["duplicates_created"] = {
                "value": len(customers) - len({c["DisplayName"].casefold() for c in customers})
            }
            return figures
        finally:
            await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--new", type=int, default=50, help="accounts with a new name")
    parser.add_argument("--taken", type=int, default=50, help="accounts whose name QB has")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.new, args.taken)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
