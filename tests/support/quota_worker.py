"""One process spending a realm's QuickBooks quota, for the tests and benchmarks that need
several processes on one realm: `requests` count queries at once through a client whose
limits are shared with every other process through the PostgreSQL ledger (or, with
`--scope process`, kept by this process alone). Prints one JSON line: what it did, its CPU.

    python -m tests.support.quota_worker --database-url URL --base-url URL --token-url URL \
        --client-id ID --client-secret S --realm R --refresh-token T --requests 60 \
        --limit 40 --window 2 --in-flight 4 [--priority bulk] [--scope process]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from qbsync.db import connect_pool
from qbsync.db.quota import PostgresQuotaLedger
from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.limiter import Limits, bulk_work
from qbsync.quickbooks.tokens import InMemoryTokenStore


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for name in ("database-url", "base-url", "token-url", "client-id", "client-secret"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--realm", required=True)
    parser.add_argument("--refresh-token", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--window", type=float, required=True)
    parser.add_argument("--in-flight", type=int, required=True)
    parser.add_argument("--priority", choices=["interactive", "bulk"], default="interactive")
    parser.add_argument("--scope", choices=["deployment", "process"], default="deployment")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> dict[str, object]:
    pool = await connect_pool(args.database_url, attempts=3, max_size=2)
    ledger = PostgresQuotaLedger(pool) if args.scope == "deployment" else None
    client = QuickBooksClient(
        base_url=args.base_url,
        token_url=args.token_url,
        client_id=args.client_id,
        client_secret=args.client_secret,
        tokens=InMemoryTokenStore({args.realm: args.refresh_token}),
        limits=Limits(args.limit, args.window, args.in_flight),
        retry=RetryPolicy(attempts=3, throttled_attempts=1),  # a 429 fails the call, visibly
        ledger=ledger,
    )
    waits: list[float] = []

    async def one() -> None:
        began = time.monotonic()
        await client.count_customers(args.realm)
        waits.append(time.monotonic() - began)

    cpu, began = time.process_time(), time.monotonic()
    try:
        if args.priority == "bulk":
            with bulk_work():
                outcomes = await asyncio.gather(
                    *(one() for _ in range(args.requests)), return_exceptions=True
                )
        else:
            outcomes = await asyncio.gather(
                *(one() for _ in range(args.requests)), return_exceptions=True
            )
    finally:
        await client.aclose()
        await pool.close()
    failures = [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]
    return {
        "done": args.requests - len(failures),
        "failures": failures[:3],
        "seconds": time.monotonic() - began,
        "cpu_seconds": time.process_time() - cpu,
        "waits": sorted(waits),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(arguments()))))
