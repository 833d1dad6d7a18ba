"""The platform on the real broker and database: storage, dead letters, migrations,
configuration errors and unreachable dependencies."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import asyncpg

from qbsync.db import connect_pool, migrate
from qbsync.db.migrate import available_migrations
from qbsync.db.pool import Pool
from qbsync.kafka.producer import Producer
from tests.conftest import unique
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess
from tests.support.stack import REPO, Stack


def account_event(firm: str, account: str, name: str, **account_fields: Any) -> dict[str, Any]:
    return {
        "event_id": unique("evt"),
        "type": "account.created",
        "occurred_at": "2026-11-25T16:00:00Z",
        "firm_id": firm,
        "account": {"id": account, "name": name, "status": "Client", **account_fields},
    }


async def test_an_account_event_reaches_postgres_through_the_matcher(
    spawn: Callable[..., ServiceProcess], producer: Producer, pool: Pool
) -> None:
    firm, account = unique("firm"), unique("acct")
    spawn("services.matcher")
    event = account_event(firm, account, "Acme Tax LLC", phone=" 512-555-0100 ")
    await producer.send("liscio.account-events", f"{firm}:{account}", event)

    async def stored() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT name, name_folded, phone FROM accounts WHERE firm_id=$1 AND account_id=$2",
            firm,
            account,
        )

    row = await eventually(stored, timeout=60, what="account stored")
    assert dict(row) == {
        "name": "Acme Tax LLC",
        "name_folded": "acme tax llc",
        "phone": "512-555-0100",
    }


async def test_a_malformed_event_goes_to_the_dlq_and_the_partition_moves_on(
    spawn: Callable[..., ServiceProcess], producer: Producer, pool: Pool, stack: Stack, topics: str
) -> None:
    firm, good = unique("firm"), unique("acct")
    spawn("services.matcher")
    key = f"{firm}:broken"
    # Same key as the good event below, so both land on one partition, poison first.
    await producer.send("liscio.account-events", key, b"{not json")
    await producer.send(
        "liscio.account-events", key, {**account_event(firm, good, "X"), "type": "nope"}
    )
    await producer.send("liscio.account-events", key, account_event(firm, good, "Good Co"))

    await eventually(
        lambda: pool.fetchval("SELECT name FROM accounts WHERE firm_id=$1", firm),
        timeout=60,
        what="the good event after the poison stored",
    )
    letters = [
        value
        for k, value in await read_topic(
            stack.kafka_bootstrap, topics + "liscio.account-events.dlq", expect=2
        )
        if k == key
    ]
    assert len(letters) == 2
    assert base64.b64decode(letters[0]["value_b64"]) == b"{not json"
    assert letters[0]["error"].startswith("schema violation")
    assert "type" in letters[1]["error"]
    assert {letter["service"] for letter in letters} == {"matcher"}
    assert letters[0]["topic"] == "liscio.account-events"


async def test_migrations_run_concurrently_without_error(stack: Stack, session_tag: str) -> None:
    name = f"qbsync_test_{session_tag}_migrate"
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
        pools = [await connect_pool(dsn, attempts=2) for _ in range(4)]
        results = await asyncio.gather(*(migrate(p) for p in pools))
        everything = [version for version, _ in available_migrations()]
        # Exactly one of the four applied them all; the others found nothing left to do.
        assert sorted(results, key=len) == [[], [], [], everything]
        again = await migrate(pools[0])
        assert again == []
        for p in pools:
            await p.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def run_service(
    module: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_invalid_configuration_is_one_line_and_exit_code_2(service_env: dict[str, str]) -> None:
    for module in ("services.importer", "services.matcher", "services.pusher"):
        result = run_service(module, {**service_env, "QBO_MINOR_VERSION": "x"})
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "QBO_MINOR_VERSION" in result.stderr
        assert "Traceback" not in result.stderr


def test_unreachable_postgres_is_retried_then_fails_cleanly(service_env: dict[str, str]) -> None:
    env = {
        **service_env,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "QBSYNC_CONNECT_ATTEMPTS": "3",
    }
    result = run_service("services.importer", env)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    attempts = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and "unreachable (attempt" in line
    ]
    assert [a["msg"].split("(attempt ")[1][:6] for a in attempts] == ["1 of 3", "2 of 3", "3 of 3"]


async def test_services_stop_cleanly_on_sigterm(
    spawn: Callable[..., ServiceProcess], pool: Pool
) -> None:
    for module in ("services.importer", "services.matcher", "services.pusher"):
        process = spawn(module)
        await eventually(
            lambda p=process: asyncio.sleep(0, result="started" in p.output()),
            timeout=60,
            what=f"{module} started",
        )
        assert process.stop() == 0, process.output()[-2000:]


async def test_a_service_signalled_while_starting_stops_before_its_loops_run(
    spawn: Callable[..., ServiceProcess],
) -> None:
    # The start under way when SIGTERM arrives (a consumer connecting, here never) is cut
    # short: what had started stops, and the service's loops never run against a Runtime
    # that is stopping.
    process = spawn("tests.support.signalled_while_starting")
    assert process.process.wait(60) == 0, process.output()[-2000:]
    output = process.output()
    assert "signalled while starting" in output and "consumer stopped" in output
    assert "task used the database" not in output
    assert "Traceback" not in output


async def test_a_service_waiting_for_postgres_stops_at_once_on_sigterm(
    spawn: Callable[..., ServiceProcess],
) -> None:
    """A signal ends the bounded attempts to reach a dependency: exit 0, not exit 3 later."""
    process = spawn(
        "services.pusher",
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        QBSYNC_CONNECT_ATTEMPTS="50",
    )
    await eventually(
        lambda: asyncio.sleep(0, result="unreachable (attempt 2 of 50)" in process.output()),
        timeout=60,
        what="the pusher trying to reach PostgreSQL",
    )
    assert process.stop(timeout=30) == 0, process.output()[-2000:]
    assert "Traceback" not in process.output()


async def test_two_instances_of_each_service_run_side_by_side(
    spawn: Callable[..., ServiceProcess], producer: Producer, pool: Pool
) -> None:
    firm = unique("firm")
    processes = [
        spawn(module) for module in ("services.matcher", "services.pusher") for _ in (1, 2)
    ]
    processes += [spawn("services.importer"), spawn("services.importer")]

    async def all_started() -> bool:
        return all('"started"' in p.output() for p in processes)

    await eventually(all_started, timeout=90, what="six instances started")
    ports = {
        json.loads(line)["url"]
        for p in processes
        for line in p.output().splitlines()
        if '"http server listening"' in line
    }
    assert len(ports) == len(processes)  # no two instances share an HTTP port
    for number in range(20):
        account = f"acct-{number}"
        await producer.send(
            "liscio.account-events", f"{firm}:{account}", account_event(firm, account, "X")
        )

    async def stored() -> bool:
        count = await pool.fetchval("SELECT count(*) FROM accounts WHERE firm_id = $1", firm)
        return bool(count == 20)

    await eventually(stored, timeout=90, what="events stored with two matchers in the group")
    assert all(p.process.poll() is None for p in processes)
