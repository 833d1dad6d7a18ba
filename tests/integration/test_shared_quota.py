"""One realm's QuickBooks quota shared by several processes through the PostgreSQL ledger
(qbsync/db/quota.py): what the emulator saw decides, never the processes' own view."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from qbsync.db.pool import Pool
from qbsync.db.quota import PostgresQuotaLedger
from qbsync.emulator import EmulatorConfig, RunningEmulator, running_emulator
from qbsync.quickbooks.limiter import Grant, TakeRequest

LIMIT, WINDOW, IN_FLIGHT = 40, 2.0, 4
REQUESTS_EACH = 60


async def run_workers(
    emulator: RunningEmulator, database_url: str, scope: str, *priorities: str
) -> list[dict[str, Any]]:
    realm = emulator.realm_id
    processes = []
    for priority in priorities:
        token = await emulator.admin.issue_refresh_token(realm)
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.support.quota_worker",
                *("--database-url", database_url, "--base-url", emulator.base_url),
                *("--token-url", emulator.token_url, "--client-id", emulator.client_id),
                *("--client-secret", emulator.client_secret, "--realm", realm),
                *("--refresh-token", token, "--requests", str(REQUESTS_EACH)),
                *("--limit", str(LIMIT), "--window", str(WINDOW)),
                *("--in-flight", str(IN_FLIGHT), "--priority", priority, "--scope", scope),
                stdout=asyncio.subprocess.PIPE,
            )
        )
    outputs = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), timeout=120
    )
    assert [process.returncode for process in processes] == [0] * len(processes)
    return [json.loads(stdout) for stdout, _ in outputs]


@pytest.fixture
async def limited_emulator() -> Any:
    config = EmulatorConfig(
        max_requests_per_window=LIMIT,
        rate_window_seconds=WINDOW,
        max_in_flight=IN_FLIGHT,
        latency_ms=30,
    )
    async with running_emulator(config) as running:
        yield running


async def test_two_processes_on_one_realm_share_its_quota_without_a_429(
    limited_emulator: RunningEmulator, database_url: str, pool: Pool
) -> None:
    emulator = limited_emulator
    results = await run_workers(emulator, database_url, "deployment", "interactive", "bulk")

    assert [r["done"] for r in results] == [REQUESTS_EACH, REQUESTS_EACH], results
    counters = await emulator.admin.limits(emulator.realm_id)
    assert counters["throttled_total"] == 0
    assert counters["peak_in_flight"] <= IN_FLIGHT
    log = [e for e in await emulator.admin.requests(emulator.realm_id) if "query" in e["path"]]
    assert len(log) == 2 * REQUESTS_EACH
    arrivals = sorted(entry["started_at"] for entry in log)
    busiest = max(sum(1 for t in arrivals if start <= t < start + WINDOW) for start in arrivals)
    assert busiest <= LIMIT
    # 120 requests at 40 a window take at least two windows past the first.
    assert arrivals[-1] - arrivals[0] >= 2 * WINDOW
    # Every call was a read: the month's metered reads of the realm count them.
    reads = await pool.fetchval(
        "SELECT reads FROM qbo_reads_by_month WHERE realm_id = $1", emulator.realm_id
    )
    assert reads is not None and reads >= 2 * REQUESTS_EACH
    usage = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "qbsync"),
        "usage",
        "--json",
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
    )
    shown = json.loads((await usage.communicate())[0])
    assert {"realm_id": emulator.realm_id, "reads": reads} in shown["realms"]
    assert shown["allowance"] == 500_000


async def test_the_same_processes_with_limits_of_their_own_get_429s(
    limited_emulator: RunningEmulator, database_url: str
) -> None:
    """What the ledger prevents: each process alone keeps within the limits, together not."""
    emulator = limited_emulator
    results = await run_workers(emulator, database_url, "process", "interactive", "bulk")

    counters = await emulator.admin.limits(emulator.realm_id)
    assert counters["throttled_total"] > 0
    assert sum(r["done"] for r in results) < 2 * REQUESTS_EACH


async def test_bulk_work_waits_while_a_person_waits_in_another_process(
    pool: Pool,
) -> None:
    """Straight against the ledger: a bulk taker gets nothing while another process's
    interactive waiter is short of calls."""
    realm = f"ledger-{id(pool)}"
    interactive = PostgresQuotaLedger(pool, "interactive-process")
    bulk = PostgresQuotaLedger(pool, "bulk-process")

    def take(priority: int, want: int) -> TakeRequest:
        return TakeRequest(
            realm_id=realm,
            finished=0,
            reads=0,
            finished_groups=(),
            in_flight_calls=0,
            in_flight=0,
            want_calls=want,
            want_slots=IN_FLIGHT,
            priority=priority,
            limit=10,
            window_seconds=60.0,
            max_in_flight=IN_FLIGHT,
            chunk=8,
            ttl_seconds=30.0,
        )

    first: Grant = await bulk.take(take(1, 8))
    assert first.calls == 8
    short = await interactive.take(take(0, 8))
    assert short.calls == 2  # what was left of the 10
    assert (await bulk.take(take(1, 8))).calls == 0  # bulk gives way; it held 8, now 0
    assert (await interactive.take(take(0, 8))).calls == 8  # the bulk's 8 came back
    assert (await interactive.take(take(0, 0))).calls == 0
    assert (await bulk.take(take(1, 8))).calls == 8  # nobody interactive waits any more


async def test_slots_go_where_requests_wait(pool: Pool) -> None:
    """Straight against the ledger: a process that could use one slot holds one, and a
    backlogged process gets the rest (not an equal half); a process short of slots gets
    its share back at the backlogged one's next take."""
    realm = f"slots-{id(pool)}"
    pusher = PostgresQuotaLedger(pool, "pusher-process")
    matcher = PostgresQuotaLedger(pool, "matcher-process")
    max_in_flight = 10

    def take(want_slots: int, in_flight: int = 0) -> TakeRequest:
        return TakeRequest(
            realm_id=realm,
            finished=0,
            reads=0,
            finished_groups=(),
            in_flight_calls=in_flight,
            in_flight=in_flight,
            want_calls=want_slots,
            want_slots=want_slots,
            priority=1,
            limit=500,
            window_seconds=60.0,
            max_in_flight=max_in_flight,
            chunk=20,
            ttl_seconds=30.0,
        )

    assert (await pusher.take(take(1))).slots == 1
    assert (await matcher.take(take(10))).slots == 9  # all the pusher does not want
    # The pusher's burst: 6 wait. Only the one slot left free now...
    assert (await pusher.take(take(6, in_flight=1))).slots == 1
    # ...the matcher, at its next take, keeps 5 of 10 (its equal share)...
    assert (await matcher.take(take(10, in_flight=9))).slots == 5
    # ...and once its requests above 5 have finished, the pusher gets its 5.
    assert (await matcher.take(take(10, in_flight=5))).slots == 5
    assert (await pusher.take(take(6, in_flight=1))).slots == 5
