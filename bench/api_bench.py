"""Benchmark: the integration API on a firm of 100,000 accounts and 100,000 customers,
half of them linked, at concurrency 20.

One API process (`python -m services.api`) on the real database of `make services-up`
(a database of the run's own, seeded with COPY: qbsync/db/seeding.py). A load generator in
this process keeps 20 requests in flight (aiohttp) for a fixed time per endpoint:

- GET /records?q=<3 letters>   (3-letter substrings of the seeded names, at random)
- GET /suggestions?account_id=A (unlinked accounts, at random)

Figures: p50 / p99 latency as the client saw it, requests per second, and the API
process's CPU time per request (from /proc: the machine is shared, so CPU per request says
more than wall time). Targets: p99 < 50 ms for both, >= 1,000 requests/s for GET /records.

    make bench-api          # or: .venv/bin/python -m bench.api_bench --seconds 20

Writes bench/results/api.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.proc_watch import database_backends, process_cpu_seconds
from bench.scratch import create_database, drop_database
from qbsync.cli.api_token import issue_token
from qbsync.config import Settings, load_settings
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db import connect_pool, migrate
from qbsync.db.connections import store_connection
from qbsync.db.seeding import copy_accounts, copy_customers, copy_links
from qbsync.kafka.admin import ensure_topics
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess

RESULTS = Path(__file__).parent / "results" / "api.json"
FIRM, REALM = "bench-firm", "bench-realm"
JWT_SECRET = "api-bench-secret-of-at-least-32-bytes"
SECRET_KEY = new_secret_key()
SYLLABLES = [
    "ka",
    "ri",
    "mo",
    "ten",
    "sul",
    "var",
    "ob",
    "lin",
    "der",
    "asp",
    "cor",
    "bel",
    "fin",
    "gro",
    "hal",
    "jun",
    "kes",
    "lor",
    "mun",
    "nor",
    "pel",
    "quin",
    "ros",
    "sta",
    "tur",
    "ul",
    "vex",
    "wil",
    "yar",
    "zen",
]
SUFFIXES = ("LLC", "Inc", "Ltd", "Partners", "& Co", "Group", "CPA", "Holdings")


def company_name(rng: random.Random) -> str:
    words = [
        "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        for _ in range(rng.randint(1, 2))
    ]
    return " ".join(words) + " " + rng.choice(SUFFIXES)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def seed(database_url: str, size: int, secret_key: str) -> list[str]:
    """Returns the unlinked accounts' ids."""
    rng = random.Random(13)
    accounts = [(f"a-{i:06d}", company_name(rng)) for i in range(size)]
    customers = [(f"{i + 1}", company_name(rng)) for i in range(size)]
    pool = await connect_pool(database_url, max_size=2)
    try:
        await migrate(pool)
        started = time.perf_counter()
        await copy_accounts(pool, FIRM, accounts)
        await copy_customers(pool, REALM, customers)
        linked = [(a, c) for (a, _), (c, _) in zip(accounts, customers, strict=True)][::2]
        await copy_links(pool, FIRM, REALM, linked)
        await store_connection(pool, TokenCipher(secret_key), FIRM, REALM, "bench-token")
        print(
            f"seeded {size:,} accounts, {size:,} customers, {len(linked):,} links"
            f" in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    finally:
        await pool.close()
    return [a for a, _ in accounts[1::2]]


async def load(
    url: str, headers: dict[str, str], paths: list[str], seconds: float, concurrency: int
) -> tuple[list[float], int]:
    """(latencies in seconds, errors) of `concurrency` workers asking `paths` at random."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                path = rng.choice(paths)
                started = time.perf_counter()
                async with session.get(path) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def database_cpu_seconds(database: str) -> dict[int, float]:
    return {pid: process_cpu_seconds(pid) or 0.0 for pid in database_backends(database)}


async def measure(
    name: str,
    api: ServiceProcess,
    database: str,
    url: str,
    headers: dict[str, str],
    paths: list[str],
    seconds: float,
    concurrency: int,
) -> dict[str, Any]:
    await load(url, headers, paths[:50], 2.0, concurrency)  # warm the caches and the pool
    cpu_before = process_cpu_seconds(api.process.pid) or 0.0
    db_before = database_cpu_seconds(database)
    started = time.monotonic()
    latencies, errors = await load(url, headers, paths, seconds, concurrency)
    elapsed = time.monotonic() - started
    cpu = (process_cpu_seconds(api.process.pid) or 0.0) - cpu_before
    db_after = database_cpu_seconds(database)
    db_cpu = sum(after - db_before.get(pid, 0.0) for pid, after in db_after.items())
    figure = {
        "endpoint": name,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "api_cpu_ms_per_request": round(cpu / max(1, len(latencies)) * 1000, 3),
        "api_cpu_share_of_one_core": round(cpu / elapsed, 2),
        # The API's PostgreSQL backends (the server runs on this machine).
        "database_cpu_ms_per_request": round(db_cpu / max(1, len(latencies)) * 1000, 3),
        "machine_load_average": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(figure), flush=True)
    return figure


async def main(args: argparse.Namespace) -> int:
    settings: Settings = load_settings()
    name = f"qbsync_api_bench_{uuid.uuid4().hex[:6]}"
    database_url = await create_database(settings.DATABASE_URL, name)
    prefix = f"apibench{uuid.uuid4().hex[:6]}."
    api: ServiceProcess | None = None
    try:
        unlinked = await seed(database_url, args.size, SECRET_KEY)
        await ensure_topics(settings.KAFKA_BOOTSTRAP_SERVERS, prefix)
        port = free_port()
        api = ServiceProcess(
            "services.api",
            {
                "DATABASE_URL": database_url,
                "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
                "QBSYNC_TOPIC_PREFIX": prefix,
                "QBSYNC_SECRET_KEY": SECRET_KEY,
                "QBSYNC_API_PORT": str(port),
                "QBSYNC_API_JWT_SECRET": JWT_SECRET,
                "QBSYNC_LOG_LEVEL": "WARNING",
            },
        )
        url = f"http://127.0.0.1:{port}"

        async def ready() -> bool:
            try:
                async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout=60, what="the API ready")
        signing = settings.model_copy(update={"QBSYNC_API_JWT_SECRET": JWT_SECRET})
        bearer = issue_token(
            signing, firm_id=FIRM, role="staff", user="bench", ttl_seconds=3600, now=time.time()
        )
        headers = {"Authorization": f"Bearer {bearer}"}
        rng = random.Random(3)
        base = f"/v1/firms/{FIRM}"
        letters = [
            s[:3] for s in {rng.choice(SYLLABLES) + rng.choice(SYLLABLES) for _ in range(400)}
        ]
        substrings = sorted({w[i : i + 3] for w in letters for i in range(len(w) - 2)})
        figures = [
            await measure(
                "GET /records?q=<3 letters>",
                api,
                name,
                url,
                headers,
                [f"{base}/records?q={q}" for q in substrings],
                args.seconds,
                args.concurrency,
            ),
            await measure(
                "GET /suggestions?account_id=A",
                api,
                name,
                url,
                headers,
                [f"{base}/suggestions?account_id={a}" for a in rng.sample(unlinked, 2000)],
                args.seconds,
                args.concurrency,
            ),
        ]
        result = {
            "accounts": args.size,
            "customers": args.size,
            "linked": args.size // 2,
            "concurrency": args.concurrency,
            "seconds_per_endpoint": args.seconds,
            "figures": figures,
            "targets": {"p99_ms": 50, "records_requests_per_second": 1000},
            "note": "one API process; the load generator runs on the same 2-core machine",
        }
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwritten to {RESULTS}")
        for f in figures:
            print(
                f"{f['endpoint']:<32} p50 {f['p50_ms']:>7} ms  p99 {f['p99_ms']:>7} ms  "
                f"{f['requests_per_second']:>7} req/s  {f['api_cpu_ms_per_request']} ms CPU/req"
                f" + {f['database_cpu_ms_per_request']} ms database CPU/req  errors {f['errors']}"
            )
        return 0
    finally:
        if api is not None:
            api.stop()
        await drop_database(settings.DATABASE_URL, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=20)
    sys.exit(asyncio.run(main(parser.parse_args())))
