"""`make run`: the whole system on demo data, narrated on the terminal.

1. starts the QuickBooks emulator (a sandbox-like company), the importer, the matcher,
   the pusher and the lag exporter as processes, on a fresh database and topic prefix;
2. a Liscio stand-in publishes the demo firm's accounts (before the firm connects: they
   are kept, nothing is sent to QuickBooks);
3. the firm connects and presses Sync Now: accounts are linked by name, fields merged;
4. a few live changes in Liscio reach QuickBooks within a second;
5. everything keeps running until Ctrl-C, which stops every process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from qbsync.cli.api_token import issue_token
from qbsync.config import REPO_ROOT, Settings, load_settings
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db import connect_pool, migrate
from qbsync.db.connections import store_connection
from qbsync.demo.liscio import LiscioAccount, LiscioStandIn
from qbsync.demo.narrator import Narrator
from qbsync.emulator.admin_client import EmulatorAdmin
from qbsync.errors import DependencyUnavailable
from qbsync.kafka.admin import ensure_topics
from qbsync.kafka.producer import Producer

FIRM = "demo-firm"
REALM = "9341455130166501"
SECRET = new_secret_key()  # the demo makes a fresh database, so a fresh key each time
API_JWT_SECRET = "qbsync-demo-api-jwt-secret-not-for-production"
CLIENT_ID, CLIENT_SECRET, VERIFIER = "demo-client", "demo-secret", "demo-verifier"
QBSYNC = str(Path(sys.executable).parent / "qbsync")

# Names as the firm typed them in Liscio; the sandbox company has most of them in QuickBooks.
DEMO_ACCOUNTS = [
    LiscioAccount(
        "acct-1", "AMY'S BIRD SANCTUARY", phone="(650) 555-0000", website="https://birds.example"
    ),
    LiscioAccount(
        "acct-2",
        "bill's windsurf shop",
        address={
            "line1": "77 Harbor Way",
            "city": "Half Moon Bay",
            "state": "CA",
            "postal_code": "94019",
            "country": "US",
        },
    ),
    LiscioAccount("acct-3", "Cool Cars"),
    LiscioAccount("acct-4", "Red Rock Diner", status="Prospect"),
    LiscioAccount("acct-5", "Lighthouse Tax Partners", phone="(207) 555-0142"),
    LiscioAccount("acct-6", "Northwind Bookkeeping", status="Prospect"),
]


STARTED = time.monotonic()


async def _answers(http: httpx.AsyncClient, url: str) -> bool:
    return (await http.get(url)).status_code == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def say(text: str = "") -> None:
    print(text, flush=True)


class Processes:
    """Every process the demo starts; all of them are stopped on the way out."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.running[name] = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
        )

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.running.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def fresh_database(server_url: str, name: str) -> str:
    try:
        admin = await asyncpg.connect(server_url)
    except OSError as exc:
        raise DependencyUnavailable(f"PostgreSQL unreachable: {exc}") from exc
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


async def wait_for(probe: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if result := await probe():
                return result
        await asyncio.sleep(0.2)
    raise RuntimeError(f"demo: {what} did not happen within {timeout}s (see the logs in .run/demo)")


async def demo(processes: Processes) -> None:
    settings = load_settings()
    prefix = f"demo{time.strftime('%H%M%S')}."
    database_url = await fresh_database(settings.DATABASE_URL, "qbsync_demo")
    pool = await connect_pool(database_url)
    await migrate(pool)
    await ensure_topics(settings.KAFKA_BOOTSTRAP_SERVERS, prefix, settings.QBSYNC_CONNECT_ATTEMPTS)

    emulator_port, importer_port = free_port(), free_port()
    matcher_port, pusher_port, exporter_port = free_port(), free_port(), free_port()
    base_url = f"http://127.0.0.1:{emulator_port}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
        "DATABASE_URL": database_url,
        "QBSYNC_TOPIC_PREFIX": prefix,
        "QBSYNC_SECRET_KEY": SECRET,
        "QBO_BASE_URL": base_url,
        "QBO_TOKEN_URL": base_url + "/oauth2/v1/tokens/bearer",
        "QBO_CLIENT_ID": CLIENT_ID,
        "QBO_CLIENT_SECRET": CLIENT_SECRET,
        "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER,
        "QBSYNC_CDC_INTERVAL_SECONDS": "5",
    }
    api_secret = settings.QBSYNC_API_JWT_SECRET or API_JWT_SECRET
    api_url = f"http://{settings.QBSYNC_API_HOST}:{settings.QBSYNC_API_PORT}"
    say("== qbsync demo ==")
    say(f"Kafka {settings.KAFKA_BOOTSTRAP_SERVERS}, database qbsync_demo, topic prefix {prefix}")
    processes.start(
        "emulator",
        [
            QBSYNC,
            "emulator",
            "--port",
            str(emulator_port),
            "--realm",
            REALM,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--latency-ms",
            "40",
            "--webhook-url",
            f"http://127.0.0.1:{importer_port}/webhooks/quickbooks",
            "--webhook-verifier-token",
            VERIFIER,
        ],
        {},
    )
    for name, port in (
        ("importer", importer_port),
        ("matcher", matcher_port),
        ("pusher", pusher_port),
    ):
        processes.start(
            name, [sys.executable, "-m", f"services.{name}"], {**env, "QBSYNC_HTTP_PORT": str(port)}
        )
    processes.start(
        "api",
        [sys.executable, "-m", "services.api"],
        {
            **env,
            "QBSYNC_API_HOST": settings.QBSYNC_API_HOST,
            "QBSYNC_API_PORT": str(settings.QBSYNC_API_PORT),
            "QBSYNC_API_JWT_SECRET": api_secret,
        },
    )
    processes.start(
        "lag-exporter",
        [sys.executable, "-m", "qbsync.lag_exporter"],
        {**env, "QBSYNC_HTTP_PORT": str(exporter_port)},
    )
    admin = EmulatorAdmin(base_url)
    await wait_for(lambda: admin.realm(REALM), "the QuickBooks emulator answering")
    async with httpx.AsyncClient() as http:
        for port in (importer_port, matcher_port, pusher_port, exporter_port):
            url = f"http://127.0.0.1:{port}/" + ("metrics" if port == exporter_port else "readyz")
            await wait_for(lambda u=url: _answers(http, u), f"{url} answering")
        await wait_for(lambda: _answers(http, f"{api_url}/readyz"), f"{api_url} ready")
    say(f"ready {time.monotonic() - STARTED:.1f}s after the demo started")
    say(f"QuickBooks emulator   {base_url}  (sandbox company, realm {REALM}; docs/emulator.md)")
    for name, port in (
        ("importer", importer_port),
        ("matcher", matcher_port),
        ("pusher", pusher_port),
    ):
        say(f"{name:<21} http://127.0.0.1:{port}/readyz, /healthz, /metrics")
    say(f"lag exporter          http://127.0.0.1:{exporter_port}/metrics")
    say(f"integration API       {api_url}/docs  (OpenAPI: {api_url}/openapi.json)")
    say(f"lag, live             QBSYNC_TOPIC_PREFIX={prefix} .venv/bin/qbsync lag --watch")
    say(f"logs                  {processes.log_dir}")

    producer = Producer(settings.KAFKA_BOOTSTRAP_SERVERS, prefix)
    await producer.start()
    liscio = LiscioStandIn(producer, settings.KAFKA_BOOTSTRAP_SERVERS, FIRM)
    stopping = asyncio.Event()
    narrator = Narrator(pool, settings.KAFKA_BOOTSTRAP_SERVERS, prefix, FIRM, say)
    background = [
        asyncio.create_task(liscio.apply_commands(stopping)),
        asyncio.create_task(narrator.run(stopping)),
    ]
    try:
        await story(pool, admin, liscio, narrator, env)
        explain_api(settings, api_url, api_secret)
        say()
        say("The system keeps running: change a customer in QuickBooks through the emulator's")
        say("admin API (docs/emulator.md) or watch the lag. Ctrl-C stops what the demo started.")
        await asyncio.Event().wait()
    finally:
        stopping.set()
        await asyncio.gather(*background, return_exceptions=True)
        await producer.stop()
        await admin.aclose()
        await pool.close()


def explain_api(settings: Settings, api_url: str, secret: str) -> None:
    """How to call the integration API on the demo firm (README, "The integration API")."""
    signing = settings.model_copy(update={"QBSYNC_API_JWT_SECRET": secret})
    admin, staff = (
        issue_token(
            signing,
            firm_id=FIRM,
            role=role,
            user=f"demo-{role}",
            ttl_seconds=86_400,
            now=time.time(),
        )
        for role in ("admin", "staff")
    )
    firm = f"{api_url}/v1/firms/{FIRM}"
    say()
    say('The integration page in the browser (README, "The integration page in the browser"):')
    say(f"  as a firm admin  {api_url}/?token={admin}")
    say(f"  as staff         {api_url}/?token={staff}")
    say()
    say("The integration API (tokens valid for a day; `qbsync api-token` makes others):")
    say(f"  export ADMIN={admin}")
    say(f"  export STAFF={staff}")
    say(f'  curl -s -H "Authorization: Bearer $STAFF" {firm}/integration')
    say(f'  curl -s -H "Authorization: Bearer $STAFF" "{firm}/records?filter=unlinked_accounts"')
    say(f'  curl -s -H "Authorization: Bearer $STAFF" "{firm}/suggestions?account_id=ACCOUNT"')
    say(f'  curl -s -X POST -H "Authorization: Bearer $ADMIN" {firm}/links \\')
    say('       -H "Content-Type: application/json" -d \'{"account_id": "A", "customer_id": "C"}\'')
    say(f'  curl -s -X POST -H "Authorization: Bearer $ADMIN" "{firm}/syncs?dry_run=true"')


async def story(
    pool: asyncpg.Pool,
    admin: EmulatorAdmin,
    liscio: LiscioStandIn,
    narrator: Narrator,
    env: dict[str, str],
) -> None:
    say()
    say("1. Liscio publishes the firm's accounts; the firm has not connected QuickBooks yet,")
    say("   so they are kept and nothing is written anywhere.")
    events = []
    for account in DEMO_ACCOUNTS:
        events.append((await liscio.create(account)).event_id)
        say(f"   account {account.id}: {account.name!r} ({account.status})")
    await wait_for(lambda: narrator.accounts_stored(len(DEMO_ACCOUNTS)), "accounts stored")
    await wait_for(lambda: narrator.pusher_has_seen(events), "the pusher skipping them")

    say()
    say("2. The firm connects its QuickBooks company and presses Sync Now.")
    token = await admin.issue_refresh_token(REALM)
    await store_connection(pool, TokenCipher(SECRET), FIRM, REALM, token)
    sync = await asyncio.create_subprocess_exec(
        QBSYNC,
        "sync",
        "--firm",
        FIRM,
        "--wait",
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await sync.communicate()
    say("   " + (out.decode() or err.decode()).strip().replace("\n", "\n   "))
    await narrator.fields_written()

    say()
    say("3. Live changes in Liscio reach QuickBooks (the pusher):")
    started = time.monotonic()
    await liscio.update("acct-3", phone="(650) 555-7777")
    await wait_for(
        lambda: narrator.customer_field(admin, REALM, "acct-3", "phone", "(650) 555-7777"),
        "the phone change in QuickBooks",
    )
    say(f"   Cool Cars' new phone is in QuickBooks after {time.monotonic() - started:.2f}s")
    await liscio.create(
        LiscioAccount(
            f"acct-{uuid.uuid4().hex[:4]}",
            "Harborview CPA Clients",
            website="https://harborview.example",
        )
    )
    await liscio.update("acct-6", status="Client")
    say("   A new account, and the Prospect 'Northwind Bookkeeping' now a Client, are created in")
    say("   QuickBooks (Prospects never are; 'Red Rock Diner' was linked by name at Sync Now")
    say("   because QuickBooks had it). 'Bill's Windsurf Shop' is archived in Liscio: delinked,")
    say("   its customer stays in QuickBooks.")
    await liscio.archive("acct-2")
    await wait_for(narrator.quiet, "the live changes settling", timeout=30)


def main() -> None:
    log_dir = REPO_ROOT / ".run" / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = Processes(log_dir)
    loop = asyncio.new_event_loop()
    task = loop.create_task(demo(processes))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        say("\nStopping every process the demo started...")
    except RuntimeError as exc:
        say(str(exc))
        raise SystemExit(1) from None
    except DependencyUnavailable as exc:
        # Kafka or PostgreSQL unreachable: one line, not a traceback.
        say(f"demo: cannot start: {exc} (is `make services-up` running? see .run/services.env)")
        raise SystemExit(3) from None
    finally:
        processes.stop_all()
        loop.close()
        say("Stopped.")


if __name__ == "__main__":
    main()
