"""Benchmark: the metered reads the running importer makes for an idle realm (issue 15,
goal at most 48 a realm a day plus the daily reconciliation).

The real importer process (`services.importer`, Kafka, the PostgreSQL of
`make services-up` in a database of the run's own) with the emulator in a process, and
`--realms` connected firms whose QuickBooks nothing changes. The CDC interval is compressed
(`--interval` seconds instead of the default 1,800); once every realm has had its start-up
round, the emulator's request log is cleared and the importer is left alone for
`--idle-seconds`. Every request the realms then received is counted (GETs are QuickBooks'
metered reads: query, read, CDC).

Scaling to a day with the default settings: the run measures the mean gap between two
rounds of a realm against the interval it was given (the loop's own overhead: how late
after the interval a realm is found due). With the default interval the gap is the interval
plus at most the poller's check period (60 s, `POLL_CHECK_SECONDS`), so a day costs between
86,400 / (1,800 + 60) and 86,400 / 1,800 reads, times the reads a round made here; the
daily reconciliation is the first round after midnight reading a day further back, no
extra read. Nothing here runs over a midnight: that part is the unit tests'
(`tests/unit/test_freshness.py`).

    .venv/bin/python -m bench.idle_reads    # writes bench/results/idle_reads.json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import uuid
from pathlib import Path
from typing import Any

from bench.scratch import create_database, drop_database
from qbsync.db import connect_pool, migrate
from qbsync.kafka.admin import ensure_topics
from qbsync.kafka.producer import Producer
from services.importer.app import POLL_CHECK_SECONDS
from tests.integration.system import running_system
from tests.support.keys import TEST_SECRET_KEY
from tests.support.polling import eventually
from tests.support.stack import LocalStack

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "idle_reads.json"
DEFAULT_INTERVAL = 1800.0
DAY = 86_400.0
TARGET_PER_DAY = 48


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack = LocalStack.from_environment()
    tag = uuid.uuid4().hex[:8]
    database_name = f"qbsync_idle_{tag}"
    prefix = f"idle-{tag}."
    database_url = await create_database(stack.database_url, database_name)
    pool = await connect_pool(database_url, 3)
    await migrate(pool)
    await ensure_topics(stack.kafka_bootstrap, prefix)
    producer = Producer(stack.kafka_bootstrap, prefix)
    await producer.start()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "DATABASE_URL": database_url,
        "QBSYNC_TOPIC_PREFIX": prefix,
        "QBSYNC_SECRET_KEY": TEST_SECRET_KEY,
        "QBSYNC_LOG_LEVEL": "INFO",  # its "ready" line is what the harness waits for
        "QBSYNC_CDC_INTERVAL_SECONDS": str(args.interval),
    }
    try:
        async with running_system(
            pool, producer, stack.kafka_bootstrap, prefix, env, services=("services.importer",)
        ) as system:
            firms = [
                await system.new_firm({"name": f"Idle Customer {n}"}) for n in range(args.realms)
            ]

            async def every_realm_read_once() -> bool:
                for firm in firms:
                    log = await system.admin.requests(firm.realm_id)
                    if not any(e["path"].endswith("/cdc") for e in log):
                        return False
                return True

            await eventually(
                every_realm_read_once, timeout=120, interval=0.5, what="every realm's first round"
            )
            for firm in firms:
                await system.admin.clear_requests(firm.realm_id)
            await asyncio.sleep(args.idle_seconds)  # the measurement: the importer left alone
            per_realm = []
            for firm in firms:
                log = await system.admin.requests(firm.realm_id)
                reads = [e for e in log if e["method"] == "GET"]
                rounds = sorted(e["started_at"] for e in log if e["path"].endswith("/cdc"))
                gaps = [b - a for a, b in itertools.pairwise(rounds)]
                per_realm.append(
                    {
                        "realm_id": firm.realm_id,
                        "requests": len(log),
                        "reads": len(reads),
                        "cdc_rounds": len(rounds),
                        "mean_gap_seconds": round(sum(gaps) / len(gaps), 3) if gaps else None,
                    }
                )
    finally:
        await producer.stop()
        await pool.close()
        await drop_database(stack.database_url, database_name)
    return figures(args, per_realm)


def figures(args: argparse.Namespace, per_realm: list[dict[str, Any]]) -> dict[str, Any]:
    reads = sum(r["reads"] for r in per_realm)
    rounds = sum(r["cdc_rounds"] for r in per_realm)
    gaps = [r["mean_gap_seconds"] for r in per_realm if r["mean_gap_seconds"] is not None]
    mean_gap = sum(gaps) / len(gaps) if gaps else None
    reads_per_round = reads / rounds if rounds else 0.0
    # The loop's lateness past the interval, measured; with the default interval a realm is
    # looked at every 60 s, so it is at most that late.
    lateness = max(0.0, mean_gap - args.interval) if mean_gap is not None else None
    best = DAY / DEFAULT_INTERVAL * reads_per_round
    worst = DAY / (DEFAULT_INTERVAL + POLL_CHECK_SECONDS) * reads_per_round
    return {
        "config": {
            "realms": args.realms,
            "cdc_interval_seconds": args.interval,
            "idle_seconds": args.idle_seconds,
            "default_cdc_interval_seconds": DEFAULT_INTERVAL,
            "poll_check_seconds": POLL_CHECK_SECONDS,
        },
        "measured": {
            "reads_per_realm": round(reads / len(per_realm), 2),
            "reads_per_realm_per_interval": round(
                reads / len(per_realm) / (args.idle_seconds / args.interval), 3
            ),
            "reads_per_cdc_round": round(reads_per_round, 3),
            "mean_gap_between_rounds_seconds": None if mean_gap is None else round(mean_gap, 3),
            "lateness_past_interval_seconds": None if lateness is None else round(lateness, 3),
        },
        "scaled_to_a_default_day": {
            "reads_per_realm_per_day": [round(worst, 1), round(best, 1)],
            "how": (
                "86,400 s / (default interval + 0 .. the 60 s check period) x reads per round"
                " measured; the daily reconciliation is the first round after midnight (no"
                " extra read)"
            ),
            "target": f"at most {TARGET_PER_DAY}",
            "met": best <= TARGET_PER_DAY,
        },
        "per_realm": per_realm,
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--realms", type=int, default=5)
    parser.add_argument("--interval", type=float, default=3.0, help="CDC interval (seconds)")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if results["scaled_to_a_default_day"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
