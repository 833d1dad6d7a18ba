"""`make bench-token-kills`: how often SIGKILLing a process in the middle of refreshing a
realm's token costs the connection (`needs_reconnect`).

A refresher process (tests/support/refresher.py --loop) refreshes one realm's token again
and again (row lock, token request, commit); after a random pause it is SIGKILLed, at a
random point of its refresh cycle, and a fresh process then needs the realm's token. That
is done `--kills` times against the emulator as Intuit documents rotation (a rotated-away
refresh token keeps working for 24 hours) and as a strict issuer (dead at once). Against
the strict issuer a kill bites when it lands between QuickBooks rotating the token and our
commit; the share of kills that bite is that window's share of a refresh cycle, an upper
bound for services that refresh once an hour. Figures to bench/results/token_kills.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.scratch import create_database, drop_database
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db import connect_pool, migrate
from qbsync.db.connections import store_connection
from qbsync.emulator import EmulatorConfig, running_emulator
from tests.support.processes import ServiceProcess
from tests.support.stack import REPO, LocalStack

SECRET = new_secret_key()
RESULTS = REPO / "bench" / "results" / "token_kills.json"
MODES = {"intuit_24h_grace": 86_400.0, "strict": 0.0}


def refresher(env: dict[str, str], realm_id: str, *extra: str) -> ServiceProcess:
    argv = [sys.executable, "-m", "tests.support.refresher", realm_id, *extra]
    return ServiceProcess("tests.support.refresher", env, argv)


async def wait_until(probe: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


async def one_mode(
    database_url: str, grace: float, kills: int, rng: random.Random
) -> dict[str, Any]:
    pool = await connect_pool(database_url, attempts=3)
    cipher = TokenCipher(SECRET)
    config = EmulatorConfig(seed_realm=False, previous_refresh_token_seconds=grace)
    bites = refreshes = 0
    cycle_seconds: list[float] = []
    async with running_emulator(config) as emulator:
        created = await emulator.admin.create_realm(contents="empty")
        realm = str(created["realm_id"])
        firm = f"token-kills-{uuid.uuid4().hex[:6]}"
        await store_connection(pool, cipher, firm, realm, str(created["refresh_token"]))
        env = {
            "DATABASE_URL": database_url,
            "QBSYNC_SECRET_KEY": SECRET,
            "QBO_BASE_URL": emulator.base_url,
            "QBO_TOKEN_URL": emulator.token_url,
            "QBO_CLIENT_ID": emulator.client_id,
            "QBO_CLIENT_SECRET": emulator.client_secret,
        }
        for _ in range(kills):
            looping = refresher(env, realm, "--loop")
            await wait_until(
                lambda p=looping: "refreshed 5" in p.output() or p.process.poll() is not None,
                120,
                "the refresher refreshing",
            )
            started, before = time.monotonic(), looping.output().count("refreshed ")
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # many cycles: a random point of one
            looping.kill()
            done = looping.output().count("refreshed ")
            if done > before:
                cycle_seconds.append((time.monotonic() - started) / (done - before))
            refreshes += done
            check = refresher(env, realm)
            await wait_until(lambda p=check: p.process.poll() is not None, 120, "the check")
            if check.stop() == 3:
                bites += 1
                token = await emulator.admin.issue_refresh_token(realm)
                await store_connection(pool, cipher, firm, realm, token)  # reconnected
    await pool.close()
    cycle_seconds.sort()
    return {
        "kills": kills,
        "needs_reconnect": bites,
        "refreshes_before_the_kills": refreshes,
        "median_refresh_cycle_ms": round(1000 * cycle_seconds[len(cycle_seconds) // 2], 1)
        if cycle_seconds
        else None,
    }


async def run(kills: int, seed: int) -> dict[str, Any]:
    stack = LocalStack.from_environment()
    name = f"qbsync_token_kills_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(stack.database_url, name)
    try:
        pool = await connect_pool(database_url, attempts=3)
        await migrate(pool)
        await pool.close()
        rng = random.Random(seed)
        results = {
            mode: await one_mode(database_url, grace, kills, rng) for mode, grace in MODES.items()
        }
    finally:
        await drop_database(stack.database_url, name)
    return {"seed": seed, **results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30, help="kills per mode")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.kills, args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
