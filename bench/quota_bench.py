"""Benchmark: one realm's QuickBooks quota shared by four processes (issue 15).

One realm in `qbsync emulator` (a process, 80 ms latency, 500 requests per window, 10 in
flight, the window compressed to `--rate-window` seconds) and four processes, each with the
real QuickBooksClient taking its share from the PostgreSQL ledger of a fresh database,
playing the roles that spend a realm's quota together:

- importer (bulk): a Sync Now's import, paging through every customer;
- matcher (bulk): the run's first sync, `--first-sync` sparse updates all at once;
- pusher A and pusher B (interactive): `--live` live updates between them, arriving at
  `--live-rate` a second from the start, and `--creates` creates.

Each process plays its role's calls as the service would make them (same client, same
priorities: `bulk_work()` for the importer's pages and the first sync); the services' own
paths through the shared quota are proven by `make test`. Every count and time comes from
the emulator's request log, except a live update's wait, which its process measures from
the moment the update arrived (its scheduled time) to QuickBooks' answer.

Figures: 429s (goal 0); the busiest rolling window against the limit; the fraction of the
quota used while work was backlogged (the mean over every rolling window inside the first
sync, goal at least 0.95); the p99 wait of a live update
while the first sync runs (goal under two windows); CPU per call of each process.

    make bench-quota        # or: .venv/bin/python -m bench.quota_bench --rate-window 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.scratch import create_database, drop_database
from qbsync.db import connect_pool, migrate
from qbsync.db.quota import PostgresQuotaLedger
from qbsync.emulator.admin_client import EmulatorAdmin
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.limiter import Limits, bulk_work
from qbsync.quickbooks.tokens import InMemoryTokenStore
from tests.integration.system import CLIENT_ID, CLIENT_SECRET, start_emulator, wait_until_ready
from tests.support.stack import LocalStack

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "quota.json"
ROLES = ("importer", "matcher", "pusher-a", "pusher-b")
TARGET_FRACTION = 0.95
TARGET_P99_WINDOWS = 2.0


# -- One process of the run ------------------------------------------------------------------


async def play(args: argparse.Namespace) -> dict[str, Any]:
    """What one role's process does; returns its own figures (times are wall clock)."""
    pool = await connect_pool(args.database_url, attempts=3, max_size=2)
    client = QuickBooksClient(
        base_url=args.base_url,
        token_url=args.base_url + "/oauth2/v1/tokens/bearer",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        tokens=InMemoryTokenStore({args.realm: args.refresh_token}),
        limits=Limits(args.limit, args.rate_window, args.in_flight),
        ledger=PostgresQuotaLedger(pool),
    )
    # Ready (a loaded machine starts processes slowly): the runner answers with the start,
    # the same moment for every role, once all four are ready.
    await client.count_customers(args.realm)  # connected, token fetched
    print("ready", flush=True)
    start = float(await asyncio.to_thread(sys.stdin.readline))
    await asyncio.sleep(max(0.0, start - time.time()))
    cpu = time.process_time()
    waits: list[tuple[float, float]] = []  # (arrived, waited) of each live update
    calls = 0
    try:
        if args.role == "importer":
            with bulk_work():
                calls = sum([1 async for _ in client.customers(args.realm)]) // 1000 + 1
        elif args.role == "matcher":
            ids = range(1, args.first_sync + 1)

            async def first_sync(customer_id: int) -> None:
                await client.update_customer(
                    args.realm,
                    str(customer_id),
                    "0",
                    {"Notes": f"first sync {customer_id}"},
                    request_id=f"first-sync-{args.run}-{customer_id}",
                )

            with bulk_work():
                await asyncio.gather(*(first_sync(i) for i in ids))
            calls = len(ids)
        else:
            half = 0 if args.role == "pusher-a" else 1
            live = [
                n for n in range(args.live) if n % 2 == half
            ]  # pusher A the even ones, B the odd ones

            async def live_update(n: int) -> None:
                arrived = start + n / args.live_rate
                await asyncio.sleep(max(0.0, arrived - time.time()))
                customer_id = str(args.first_sync + 1 + n)
                await client.update_customer(
                    args.realm,
                    customer_id,
                    "0",
                    {"Notes": f"live {n}"},
                    request_id=f"live-{args.run}-{n}",
                )
                waits.append((arrived, time.time() - arrived))

            async def create(n: int) -> None:
                arrived = start + n * args.live / args.live_rate / max(args.creates, 1)
                await asyncio.sleep(max(0.0, arrived - time.time()))
                await client.create_customer(
                    args.realm,
                    {"DisplayName": f"Quota Bench New {args.run} {n:03d}"},
                    request_id=f"create-{args.run}-{n}",
                )

            creates = [n for n in range(args.creates) if n % 2 == half]
            await asyncio.gather(*(live_update(n) for n in live), *(create(n) for n in creates))
            calls = len(live) + len(creates)
    finally:
        await client.aclose()
        await pool.close()
    return {
        "role": args.role,
        "calls": calls,
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "live_waits": waits,
    }


# -- The run -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack = LocalStack.from_environment()
    tag = uuid.uuid4().hex[:8]
    database_name = f"qbsync_quota_{tag}"
    database_url = await create_database(stack.database_url, database_name)
    pool = await connect_pool(database_url, 3)
    await migrate(pool)
    await pool.close()
    emulator, base_url = start_emulator(
        *("--latency-ms", str(args.latency_ms), "--rate-window", str(args.rate_window)),
        *("--max-requests", str(args.limit), "--max-in-flight", str(args.in_flight)),
    )
    admin = EmulatorAdmin(base_url)
    try:
        await wait_until_ready({}, admin)
        realm = await admin.create_realm(contents="empty")
        realm_id = str(realm["realm_id"])
        await admin.bulk_customers(realm_id, args.first_sync + args.live, prefix="Quota Bench")
        await admin.clear_requests(realm_id)
        processes = []
        for role in ROLES:
            token = await admin.issue_refresh_token(realm_id)
            argv = [
                *("--role", role, "--realm", realm_id, "--refresh-token", token),
                *("--database-url", database_url, "--base-url", base_url),
                *("--run", tag),
                *_shared(args),
            ]
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.quota_bench",
                    "play",
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    cwd=REPO,
                )
            )
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
            if line.strip() != b"ready":
                raise SystemExit(f"a role did not start: {line!r}")
        await admin.clear_requests(realm_id)
        start = f"{time.time() + 1.0}\n".encode()
        outputs = await asyncio.gather(*(p.communicate(start) for p in processes))
        if any(p.returncode for p in processes):
            raise SystemExit(f"a role failed: {[p.returncode for p in processes]}")
        played = [json.loads(out) for out, _ in outputs]
        log = await admin.requests(realm_id)
        limits = await admin.limits(realm_id)
        if args.log_output is not None:  # the emulator's request log, for an analysis
            args.log_output.write_text(json.dumps(log) + "\n")
        return figures(args, played, log, limits)
    finally:
        await admin.aclose()
        try:
            await asyncio.to_thread(emulator.stop)
        except AssertionError:
            emulator.kill()
        await drop_database(stack.database_url, database_name)


def _shared(args: argparse.Namespace) -> list[str]:
    return [
        *("--rate-window", str(args.rate_window), "--limit", str(args.limit)),
        *("--in-flight", str(args.in_flight), "--first-sync", str(args.first_sync)),
        *("--live", str(args.live), "--live-rate", str(args.live_rate)),
        *("--creates", str(args.creates), "--latency-ms", str(args.latency_ms)),
    ]


def figures(
    args: argparse.Namespace,
    played: list[dict[str, Any]],
    log: list[dict[str, Any]],
    limits: dict[str, Any],
) -> dict[str, Any]:
    window, limit = args.rate_window, args.limit
    admitted = sorted(e["started_at"] for e in log if e["status"] != 429)
    throttled = sum(1 for e in log if e["status"] == 429)
    busiest = _busiest(admitted, window)
    first_sync_writes = [
        e
        for e in log
        if e["status"] == 200 and "first sync" in json.dumps(e.get("write_body") or "")
    ]
    first_sync_end = max((e["started_at"] for e in first_sync_writes), default=None)
    backlog_start = admitted[0] if admitted else 0.0
    backlog_end = first_sync_end or (admitted[-1] if admitted else 0.0)
    fraction = _fraction_used(admitted, backlog_start, backlog_end, window, limit)
    waits = sorted(
        waited
        for role in played
        for arrived, waited in role["live_waits"]
        if first_sync_end is None or arrived <= first_sync_end
    )
    p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else None
    return {
        "config": {
            "rate_window_seconds": window,
            "max_requests_per_window": limit,
            "max_in_flight": args.in_flight,
            "latency_ms": args.latency_ms,
            "first_sync_writes": args.first_sync,
            "live_updates": args.live,
            "live_per_second": args.live_rate,
            "creates": args.creates,
            "processes": list(ROLES),
        },
        "targets": {
            "throttled_429": {"value": throttled, "target": "exactly 0", "met": throttled == 0},
            "busiest_window": {
                "value": busiest,
                "target": f"at most {limit}",
                "met": busiest <= limit,
            },
            "fraction_used_while_backlogged": {
                "value": fraction,
                "target": f"at least {TARGET_FRACTION}",
                "met": fraction is not None and fraction >= TARGET_FRACTION,
            },
            "live_update_p99_wait_seconds": {
                "value": None if p99 is None else round(p99, 2),
                "target": f"under {TARGET_P99_WINDOWS * window} ({TARGET_P99_WINDOWS:g} windows)",
                "met": p99 is not None and p99 < TARGET_P99_WINDOWS * window,
            },
        },
        # Why each 429 came: the requests in flight when it arrived and those admitted in the
        # window before it (the emulator's two limits).
        "throttled": [
            {
                "at": round(e["started_at"] - backlog_start, 3),
                "in_flight_at_arrival": e.get("in_flight_at_arrival"),
                "admitted_in_window_before": sum(
                    1 for at in admitted if e["started_at"] - window < at <= e["started_at"]
                ),
                "operation": e.get("operation"),
            }
            for e in log
            if e["status"] == 429
        ],
        "mean_late_after_room_opened_seconds": _lateness(log, first_sync_end, window, limit),
        "requests": len(log),
        "first_sync_seconds": (
            round(first_sync_end - backlog_start, 1) if first_sync_end is not None else None
        ),
        "live_updates_during_first_sync": len(waits),
        "emulator_peak_in_flight": limits.get("peak_in_flight"),
        "cpu_ms_per_call": {
            role["role"]: round(1000 * role["cpu_seconds"] / max(role["calls"], 1), 3)
            for role in played
        },
        "calls": {role["role"]: role["calls"] for role in played},
        "timeline": _timeline(log, backlog_start, window),
        "load_average": os.getloadavg(),
    }


def _timeline(log: list[dict[str, Any]], start: float, window: float) -> list[dict[str, int]]:
    """Per half window: the calls of each kind QuickBooks admitted (what gave way to what)."""
    buckets: dict[int, dict[str, int]] = {}
    for entry in log:
        if entry["status"] == 429:
            continue
        body = json.dumps(entry.get("write_body") or "")
        kind = "first_sync" if "first sync" in body else "live" if "live" in body else "other"
        bucket = buckets.setdefault(int((entry["started_at"] - start) / (window / 2)), {})
        bucket[kind] = bucket.get(kind, 0) + 1
    return [buckets.get(n, {}) for n in range(max(buckets, default=-1) + 1)]


def _lateness(
    log: list[dict[str, Any]], end: float | None, window: float, limit: int
) -> float | None:
    """While the backlog lasts, how late each call arrived after its room opened (the call
    `limit` arrivals earlier leaving QuickBooks' window), on average: the quota left unused
    is about this over the window."""
    admitted = sorted(e["started_at"] for e in log if e["status"] != 429)
    late = [
        at - (admitted[n - limit] + window)
        for n, at in enumerate(admitted)
        if n >= limit and (end is None or at <= end)
    ]
    return round(sum(late) / len(late), 3) if late else None


def _busiest(arrivals: list[float], window: float) -> int:
    busiest, first = 0, 0
    for last, at in enumerate(arrivals):
        while arrivals[first] <= at - window:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


def _fraction_used(
    arrivals: list[float], start: float, end: float, window: float, limit: int
) -> float | None:
    """The mean, over every rolling window lying inside the backlog (from `start` to `end`,
    stepped by a twentieth of a window), of the requests it admitted against the limit."""
    if end - start < window:
        return None
    steps = int((end - start - window) / (window / 20)) + 1
    used = []
    for step in range(steps):
        begin = start + step * window / 20
        used.append(sum(1 for at in arrivals if begin <= at < begin + window) / limit)
    return round(sum(used) / len(used), 3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", nargs="?", choices=["run", "play"], default="run")
    parser.add_argument("--rate-window", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--first-sync", type=int, default=1000)
    parser.add_argument("--live", type=int, default=2000)
    parser.add_argument("--live-rate", type=float, default=20.0, help="live updates a second")
    parser.add_argument("--creates", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--log-output", type=Path, help="also write the emulator's request log")
    # The roles' own arguments (mode "play").
    parser.add_argument("--role", choices=ROLES)
    for name in ("realm", "refresh-token", "database-url", "base-url", "run"):
        parser.add_argument(f"--{name}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode == "play":
        print(json.dumps(asyncio.run(play(args))))
        return 0
    results = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if all(t["met"] for t in results["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
