"""`make chaos`: the whole system under faults, its history checked against the product rules.

Several firms, each on a realm of its own in the QuickBooks emulator; two matchers, two
pushers and an importer as real processes on the real broker and database. A workload
sends thousands of Liscio events (creates of Clients and Prospects, updates of every synced
field, Prospect -> Client, renames, archives, redeliveries of the same event id) and makes
QuickBooks-side edits, deactivations and merges, while a driver SIGKILLs a random service
every few seconds and restarts it, crashes and restarts the Kafka broker and PostgreSQL
once each, and has the emulator answer 5xx, 429 bursts, slow answers, and writes applied
but answered by a dropped connection.

After the last fault, every firm gets a final Sync Now, and the oracle compares what
QuickBooks holds (read from the emulator) and what Liscio holds (this harness plays
Liscio) with what the event history and the product rules alone say (never the services'
tables). The request log covers the whole run, so the checks on it (never two customers
for one account, never a Prospect created, never a name written, the quota) hold
throughout, not only at the end. `--quick` is the short variant `make test` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from bench.scratch import create_database, drop_database
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db import connect_pool, migrate
from qbsync.db.connections import count_needing_reconnect, store_connection
from qbsync.domain.fields import SyncedFields
from qbsync.emulator.admin_client import EmulatorAdmin
from qbsync.kafka.admin import ensure_topics, kafka_admin
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EVENTS,
    SYNC_LINKS,
    SYNC_REQUESTS,
    all_specs,
    dlq_of,
)
from qbsync.quickbooks.mapping import synced_fields_from_qbo
from schemas import AccountCommand, AccountEvent, SyncRequest
from tests.integration.system import (
    CLIENT_ID,
    CLIENT_SECRET,
    VERIFIER,
    free_port,
    start_emulator,
)
from tests.support.api import token as api_token
from tests.support.processes import ServiceProcess
from tests.support.stack import REPO, LocalStack

SECRET = new_secret_key()
API_SECRET = "chaos-api-secret-of-at-least-32-bytes!"
RESULTS = REPO / "bench" / "results" / "chaos.json"
KINDS = ("client", "matched", "prospect", "convert", "archive", "deactivate", "merge")


@dataclass(frozen=True)
class Params:
    firms: int
    accounts: int  # per firm
    seconds: float  # how long the workload and the faults last
    kill_every: tuple[float, float]
    matchers: int = 2
    pushers: int = 2
    restart_postgres: bool = True
    converge_timeout: float = 120.0
    seed: int = 20261203
    keep: bool = False  # leave the database and the topics for inspection
    # The workload goes on past `seconds` until each firm has sent this many events: on a
    # loaded machine (or while the broker restarts) the harness itself sends slowly.
    min_events_per_firm: int = 0


FULL = Params(firms=4, accounts=70, seconds=420.0, kill_every=(4.0, 9.0))
QUICK = Params(
    firms=1,
    accounts=16,
    seconds=50.0,
    kill_every=(5.0, 9.0),
    restart_postgres=False,
    converge_timeout=90.0,
    min_events_per_firm=120,
)


# -- Liscio, as this harness plays it -----------------------------------------------------


@dataclass
class Account:
    id: str
    name: str
    kind: str
    status: str
    address: dict[str, Any] | None = None
    phone: str | None = None
    website: str | None = None
    archived: bool = False
    ever_client: bool = False

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "address": self.address,
            "phone": self.phone,
            "website": self.website,
            "contacts": [],
        }

    def synced(self) -> SyncedFields:
        return SyncedFields.parse(self.address, self.phone, self.website)


@dataclass
class Firm:
    firm_id: str
    realm_id: str
    accounts: dict[str, Account] = field(default_factory=dict)
    sent: list[AccountEvent] = field(default_factory=list)
    # Every state each account's synced fields had, oldest first (for telling a lost
    # update, an older state left in QuickBooks, from a wrong value).
    history: dict[str, list[SyncedFields]] = field(default_factory=lambda: defaultdict(list))
    gone_in_quickbooks: set[str] = field(default_factory=set)  # deactivated or merged away
    # Every name an account ever had (folded) -> the account: a create carries the name the
    # account had when the create was made.
    names: dict[str, str] = field(default_factory=dict)
    # Accounts whose customer a QuickBooks user made before the run (same name, other case).
    customer_made_by_a_user: set[str] = field(default_factory=set)
    # Create in Liscio: customers a QuickBooks user made that a firm admin asks Liscio to
    # create (customer id -> name) until the API accepts; then the account Liscio made
    # for each (account id -> customer id), which must be linked to exactly that customer.
    to_create_in_liscio: dict[str, str] = field(default_factory=dict)
    created_in_liscio: dict[str, str] = field(default_factory=dict)


class Liscio:
    """Every firm's accounts; it publishes their events and applies our commands (a fill
    sets only the fields still empty, then the account's new state is an update)."""

    def __init__(self, producer: Producer, rng: random.Random) -> None:
        self.producer = producer
        self.rng = rng
        self.firms: dict[str, Firm] = {}
        self.commands = 0
        self.redeliveries = 0
        self.creates_answered: dict[str, str] = {}  # command id -> the account it made

    async def publish(
        self, firm: Firm, account: Account, kind: str, command_id: str | None = None
    ) -> AccountEvent:
        event = AccountEvent.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "type": kind,
                "occurred_at": datetime.now(UTC),
                "firm_id": firm.firm_id,
                "account": account.state(),
                "command_id": command_id,
            }
        )
        account.ever_client |= account.status == "Client"
        firm.history[account.id].append(account.synced())
        firm.names[account.name.casefold()] = account.id
        await self.send(ACCOUNT_EVENTS, f"{firm.firm_id}:{account.id}", event)
        firm.sent.append(event)
        return event

    async def redeliver(self, firm: Firm) -> None:
        if firm.sent:
            again = self.rng.choice(firm.sent)
            await self.send(ACCOUNT_EVENTS, f"{firm.firm_id}:{again.account.id}", again)
            self.redeliveries += 1

    async def send(self, topic: str, key: str, value: Any) -> None:
        """Liscio keeps trying while the broker restarts, as a producer with retries does."""
        while True:
            try:
                await self.producer.send(topic, key, value)
                return
            except KafkaError:
                await asyncio.sleep(0.5)

    async def apply(self, command: AccountCommand) -> None:
        firm = self.firms.get(command.firm_id)
        if firm is not None and command.type == "account.create":
            await self.create(firm, command)
            return
        if firm is None or command.type != "account.fill_fields" or not command.account_id:
            return
        account = firm.accounts.get(command.account_id)
        if account is None:
            return
        self.commands += 1
        fields = command.fields.model_dump(exclude_unset=True)
        changed = False
        for name in ("address", "phone", "website"):
            if name in fields and account.synced().get(name) is None:
                setattr(account, name, fields[name])
                changed = True
        if changed and not account.archived:
            await self.publish(firm, account, "account.updated")

    async def create(self, firm: Firm, command: AccountCommand) -> None:
        """Create in Liscio: Liscio makes the account once per command (a command sent again
        is answered by the account it already made) and says which command it answers."""
        self.commands += 1
        if command.command_id in self.creates_answered:
            return
        fields = command.fields.model_dump(exclude_unset=True)
        account = Account(
            f"q-{command.source.customer_id}",
            command.name or "",
            "from_quickbooks",
            "Client",
            address=fields.get("address"),
            phone=fields.get("phone"),
            website=fields.get("website"),
        )
        firm.accounts[account.id] = account
        firm.created_in_liscio[account.id] = command.source.customer_id
        firm.customer_made_by_a_user.add(account.id)
        self.creates_answered[command.command_id] = account.id
        await self.publish(firm, account, "account.created", command_id=command.command_id)


# -- the run ------------------------------------------------------------------------------


class Chaos:
    def __init__(self, params: Params) -> None:
        self.params = params
        self.rng = random.Random(params.seed)
        self.stack = LocalStack.from_environment()
        self.prefix = f"chaos{uuid.uuid4().hex[:8]}."
        self.counter = 0
        self.kills = 0
        self.restarts = 0
        self.broker_restarts = 0
        self.database_restarts = 0
        self.faults_injected: Counter[str] = Counter()
        self.created_mid_run = 0
        self.quota_exceeded: Counter[str] = Counter()
        self.creates_in_liscio_asked = 0
        self.api_refusals: list[str] = []
        # Per realm, the emulator-clock spans in which a 429 burst was injected.
        self.bursts: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.services: dict[str, ServiceProcess] = {}
        self.links: dict[tuple[str, str], str] = {}  # (firm, account) -> customer id
        self.requests: list[dict[str, Any]] = []
        self._last_seq = 0
        self._stopping = asyncio.Event()

    # set-up ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.database = f"qbsync_chaos_{uuid.uuid4().hex[:8]}"
        self.database_url = await create_database(self.stack.database_url, self.database)
        self.pool = await connect_pool(self.database_url, attempts=3)
        await migrate(self.pool)
        await ensure_topics(self.stack.kafka_bootstrap, self.prefix)
        self.producer = Producer(self.stack.kafka_bootstrap, self.prefix)
        await self.producer.start()
        self.liscio = Liscio(self.producer, self.rng)
        self.emulator, self.base_url = start_emulator()
        self.admin = EmulatorAdmin(self.base_url)
        await self._wait_for(self._emulator_up, 30, "emulator answering")
        self.importer_port = free_port()
        self.api_port = free_port()
        self.api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10)
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.stack.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
            "QBSYNC_TOPIC_PREFIX": self.prefix,
            "QBSYNC_SECRET_KEY": SECRET,
            "QBO_BASE_URL": self.base_url,
            "QBO_TOKEN_URL": self.base_url + "/oauth2/v1/tokens/bearer",
            "QBO_CLIENT_ID": CLIENT_ID,
            "QBO_CLIENT_SECRET": CLIENT_SECRET,
            "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER,
            "QBSYNC_CDC_INTERVAL_SECONDS": "2",
            "QBSYNC_CONNECT_ATTEMPTS": "60",
            "QBSYNC_API_JWT_SECRET": API_SECRET,
        }
        for number in range(self.params.firms):
            await self._set_up_firm(number)
        await self.pool.close()  # the harness reads nothing of the services' tables
        for name in self._service_names():
            self._start_service(name)
        await self.admin.set_webhook(
            f"http://127.0.0.1:{self.importer_port}/webhooks/quickbooks", VERIFIER, batch_ms=50
        )

    def _service_names(self) -> list[str]:
        return (
            ["importer", "api"]
            + [f"matcher-{n}" for n in range(1, self.params.matchers + 1)]
            + [f"pusher-{n}" for n in range(1, self.params.pushers + 1)]
        )

    def _start_service(self, name: str) -> None:
        module = "services." + name.split("-")[0]
        env = dict(self.env)
        if module == "services.importer":
            env["QBSYNC_HTTP_PORT"] = str(self.importer_port)
        if module == "services.api":
            env["QBSYNC_API_PORT"] = str(self.api_port)
        self.services[name] = ServiceProcess(module, env)

    async def _emulator_up(self) -> bool:
        try:
            await self.admin.webhook_deliveries()
            return True
        except Exception:
            return False

    async def _set_up_firm(self, number: int) -> None:
        realm = await self.admin.create_realm(contents="empty")
        firm = Firm(f"chaos-firm-{number}-{uuid.uuid4().hex[:6]}", str(realm["realm_id"]))
        self.liscio.firms[firm.firm_id] = firm
        await store_connection(
            self.pool, TokenCipher(SECRET), firm.firm_id, firm.realm_id, realm["refresh_token"]
        )
        for n in range(self.params.accounts):
            kind = KINDS[n % len(KINDS)]
            name = f"Chaos {kind.title()} {number}-{n:03d}"
            status = "Prospect" if kind in ("prospect", "convert") else "Client"
            account = Account(f"a-{n:03d}", name, kind, status, phone=self._phone())
            if kind in ("matched", "deactivate", "merge"):
                # Already in QuickBooks under the same name in another case, with values of
                # its own: the first sync merges them (Liscio's phone wins, the website is
                # QuickBooks' only, so it is filled into Liscio).
                firm.customer_made_by_a_user.add(account.id)
                await self.admin.create_customer_as_user(
                    firm.realm_id,
                    {
                        "DisplayName": name.upper(),
                        "PrimaryPhone": {"FreeFormNumber": "000-000-0000"},
                        "WebAddr": {"URI": f"https://qbo-{n}.example"},
                    },
                )
            firm.accounts[account.id] = account

    def _phone(self) -> str:
        self.counter += 1
        return f"512-555-{self.counter % 10000:04d}"

    # the workload ---------------------------------------------------------------------
    async def workload(self, until: float) -> None:
        """Each firm's Liscio at once (a firm's events in order, as Liscio sends them)."""
        await asyncio.gather(*(self._firm_workload(f, until) for f in self.liscio.firms.values()))

    async def _firm_workload(self, firm: Firm, until: float) -> None:
        for account in firm.accounts.values():
            await self.liscio.publish(firm, account, "account.created")
        await self._request_sync(firm)
        while time.monotonic() < until or len(firm.sent) < self.params.min_events_per_firm:
            await self._one_action(firm)
            await asyncio.sleep(self.rng.uniform(0.01, 0.05))

    async def _one_action(self, firm: Firm) -> None:
        live = [a for a in firm.accounts.values() if not a.archived]
        account = self.rng.choice(live)
        roll = self.rng.random()
        if roll < 0.55:
            change = self.rng.choice(("phone", "website", "address"))
            self.counter += 1
            if change == "phone":
                account.phone = self._phone()
            elif change == "website":
                account.website = f"https://{account.id}-{self.counter}.example"
            else:
                account.address = {
                    "line1": f"{self.counter} Main St",
                    "line2": None,
                    "city": "Austin",
                    "state": "TX",
                    "postal_code": "78701",
                    "country": "US",
                }
            await self.liscio.publish(firm, account, "account.updated")
        elif roll < 0.62:
            await self.liscio.redeliver(firm)
        elif roll < 0.66 and account.kind == "convert" and account.status == "Prospect":
            account.status = "Client"
            await self.liscio.publish(firm, account, "account.updated")
        elif roll < 0.70 and account.kind == "archive":
            account.archived = True
            await self.liscio.publish(firm, account, "account.archived")
        elif roll < 0.74 and account.kind == "client":
            account.name = account.name + " (renamed)"
            await self.liscio.publish(firm, account, "account.updated")
        elif roll < 0.80:
            await self._edit_in_quickbooks(firm, account)
        elif roll < 0.83 and account.kind in ("deactivate", "merge"):
            await self._remove_in_quickbooks(firm, account)
        elif roll < 0.84:
            await self._request_sync(firm)
        elif roll < 0.86:
            await self._create_account(firm)
        elif roll < 0.87:
            await self._customer_for_liscio(firm)

    async def _customer_for_liscio(self, firm: Firm) -> None:
        """A QuickBooks user makes a customer that a firm admin will Create in Liscio."""
        self.counter += 1
        name = f"Chaos From QuickBooks {firm.firm_id[-6:]}-{self.counter:05d}"
        fields = {"DisplayName": name, "PrimaryPhone": {"FreeFormNumber": self._phone()}}
        try:
            customer = await self.admin.create_customer_as_user(firm.realm_id, fields)
        except Exception:
            return
        firm.to_create_in_liscio[str(customer["Id"])] = name

    async def ask_liscio_to_create(self) -> None:
        """The firm admin's Create in Liscio, through the API, for every customer made for
        it, again until the API accepts (404 until the importer has seen the customer; no
        answer while the API is being killed)."""
        while not self._stopping.is_set():
            for firm in self.liscio.firms.values():
                for customer_id in list(firm.to_create_in_liscio):
                    path = f"/v1/firms/{firm.firm_id}/customers/{customer_id}/create-in-liscio"
                    headers = {
                        "Authorization": "Bearer "
                        + api_token(firm.firm_id, secret=API_SECRET, user="chaos-admin")
                    }
                    try:
                        answer = await self.api.post(path, headers=headers)
                    except httpx.HTTPError:
                        break
                    if answer.status_code == 202:
                        del firm.to_create_in_liscio[customer_id]
                        self.creates_in_liscio_asked += 1
                    elif answer.status_code not in (404, 503):
                        self.api_refusals.append(f"{answer.status_code} {answer.text[:200]}")
                        del firm.to_create_in_liscio[customer_id]
            await asyncio.sleep(2)

    async def _create_account(self, firm: Firm) -> None:
        """A Client or a Prospect created while everything else goes on (Clients are
        created in QuickBooks by the pusher; Prospects never are)."""
        kind = self.rng.choice(("client", "prospect"))
        number = len(firm.accounts)
        status = "Prospect" if kind == "prospect" else "Client"
        name = f"Chaos New {kind.title()} {firm.firm_id[-6:]}-{number:03d}"
        account = Account(f"a-{number:03d}", name, kind, status, phone=self._phone())
        firm.accounts[account.id] = account
        await self.liscio.publish(firm, account, "account.created")
        self.created_mid_run += 1

    async def _edit_in_quickbooks(self, firm: Firm, account: Account) -> None:
        """A QuickBooks user edits a linked customer's phone: the next Liscio change or
        Sync Now puts Liscio's value back (Liscio's overwrites QuickBooks')."""
        customer_id = self.links.get((firm.firm_id, account.id))
        if customer_id is None:
            return
        await self._quietly(
            self.admin.edit_customer_as_user(
                firm.realm_id, customer_id, {"PrimaryPhone": {"FreeFormNumber": "999-999-9999"}}
            )
        )

    async def _remove_in_quickbooks(self, firm: Firm, account: Account) -> None:
        """Deactivate (or merge into another customer) a linked customer: delinked."""
        customer_id = self.links.get((firm.firm_id, account.id))
        if customer_id is None or account.id in firm.gone_in_quickbooks:
            return
        if account.kind == "deactivate":
            done = await self._quietly(
                self.admin.edit_customer_as_user(firm.realm_id, customer_id, {"Active": False})
            )
        else:
            targets = [
                c
                for (f, a), c in self.links.items()
                if f == firm.firm_id and firm.accounts[a].kind == "matched"
            ]
            if not targets:
                return
            done = await self._quietly(
                self.admin.merge_customers(firm.realm_id, customer_id, self.rng.choice(targets))
            )
        if done:
            firm.gone_in_quickbooks.add(account.id)

    async def _request_sync(self, firm: Firm) -> None:
        request = SyncRequest(
            request_id=str(uuid.uuid4()),
            firm_id=firm.firm_id,
            kind="sync",
            requested_at=datetime.now(UTC),
        )
        await self.liscio.send(SYNC_REQUESTS, firm.firm_id, request)

    # the faults -----------------------------------------------------------------------
    async def faults(self, until: float) -> None:
        """Kills every few seconds, the emulator's faults, and the broker's and the
        database's restarts (a third and two thirds of the way), all at once."""
        started = time.monotonic()
        span = until - started
        restarts = [self._at(started + span * 0.35, self._restart_broker)]
        if self.params.restart_postgres:
            restarts.append(self._at(started + span * 0.65, self._restart_database))
        await asyncio.gather(self._kills(until), self._emulator_faults(until), *restarts)

    async def _at(self, moment: float, fault: Any) -> None:
        await asyncio.sleep(max(0.0, moment - time.monotonic()))
        await fault()

    async def _kills(self, until: float) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(*self.params.kill_every))
            if time.monotonic() >= until:
                return
            await self._kill_and_restart()

    async def _kill_and_restart(self) -> None:
        name = self.rng.choice(list(self.services))
        self.services[name].kill()
        self.kills += 1
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        self._start_service(name)
        self.restarts += 1

    async def _emulator_faults(self, until: float) -> None:
        while time.monotonic() < until:
            await self._one_emulator_fault()
            await asyncio.sleep(1.0)

    async def _one_emulator_fault(self) -> None:
        firm = self.rng.choice(list(self.liscio.firms.values()))
        roll = self.rng.random()
        if roll < 0.25:
            settings = {
                "fault_5xx_rate": 0.1,
                "drop_rate": 0.05,
                "slow_rate": 0.05,
                "slow_ms": 3000,
            }
            self.faults_injected["5xx, dropped writes, slow answers"] += 1
        elif roll < 0.35:
            # A 429 burst: for a few seconds the realm allows almost nothing more.
            began = time.time()
            await self._quietly(self.admin.set_limits(firm.realm_id, max_requests_per_window=3))
            self.faults_injected["429 burst"] += 1
            await asyncio.sleep(3)
            await self._quietly(self.admin.set_limits(firm.realm_id, max_requests_per_window=500))
            # The window is rolling: what the burst admitted still counts for 60 s after it.
            self.bursts[firm.realm_id].append((began, time.time() + 60.0))
            return
        elif roll < 0.42:
            # Every access token of the realm dies at once: every process that calls it
            # refreshes together (one refresh token, rotating) while services are killed.
            await self._quietly(self.admin.expire_access_tokens(firm.realm_id))
            self.faults_injected["access tokens expired"] += 1
            return
        else:
            settings = {"fault_5xx_rate": 0.0, "drop_rate": 0.0, "slow_rate": 0.0}
        await self._quietly(self.admin.set_faults(firm.realm_id, **settings))

    async def _restart_broker(self) -> None:
        """Stopped and started again: what every service sees is the same as in a crash (its
        connections drop, nothing answers for a while), without the minutes a killed broker
        with this machine's hundreds of test partitions spends recovering its logs."""
        pid_file = REPO / ".run" / "kafka" / "pid"
        pid = int(await asyncio.to_thread(pid_file.read_text))
        os.kill(pid, signal.SIGTERM)
        await self._wait_for(lambda: _gone(pid), 90, "the broker stopped")
        await self._services_up()
        self.broker_restarts += 1

    async def _restart_database(self) -> None:
        # The data folder's real path, as services.sh uses it (the postgres user may not
        # pass through the checkout's folder).
        data = os.path.join(await asyncio.to_thread(os.path.realpath, REPO / ".run" / "pg"), "data")
        pg_ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]
        command = [pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True, cwd="/")
        await asyncio.sleep(2)  # down for a while, as a crash is
        await self._services_up()
        self.database_restarts += 1

    async def _services_up(self) -> None:
        """services.sh waits 90 s for the broker's port; a broker started on a machine
        shared with other brokers may take longer than that to recover its logs. It is then
        still starting, so the harness waits on (the run is not lost to the harness)."""
        script = REPO / "deploy" / "local" / "services.sh"
        deadline = time.monotonic() + 600
        while True:
            done = await asyncio.to_thread(
                subprocess.run, [str(script), "up"], capture_output=True, text=True
            )
            if done.returncode == 0 and await self._kafka_answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"services.sh up kept failing: {done.stderr[-2000:]}")
            print(f"chaos: services.sh up: {done.stderr.strip()[-300:]}; waiting", flush=True)
            await asyncio.sleep(5)

    async def _kafka_answers(self) -> bool:
        host, port = self.stack.kafka_bootstrap.rsplit(":", 1)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    # observing ------------------------------------------------------------------------
    async def report_progress(self, started: float, every: float = 30.0) -> None:
        """One line now and then, so that ten minutes of faults are not ten silent ones."""
        while not self._stopping.is_set():
            await asyncio.sleep(every)
            sent = sum(len(f.sent) for f in self.liscio.firms.values())
            throttled = sum(1 for r in self.requests if r["status"] == 429)
            print(
                f"chaos: {time.monotonic() - started:4.0f} s  events {sent:,}  kills {self.kills}"
                f"  broker/database restarts {self.broker_restarts}/{self.database_restarts}"
                f"  QuickBooks requests {len(self.requests):,} (429: {throttled})"
                f"  links {len(self.links):,}",
                flush=True,
            )

    async def follow_links(self) -> None:
        """sync.links from the start: the links as Liscio sees them."""
        consumer = AIOKafkaConsumer(
            self.prefix + SYNC_LINKS,
            bootstrap_servers=self.stack.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await self._start_consumer(consumer)
        try:
            while not self._stopping.is_set():
                for records in (await _poll(consumer)).values():
                    for record in records:
                        link = json.loads(record.value or b"{}")
                        key = (link["firm_id"], link["account_id"])
                        if link["type"] == "link.created":
                            self.links[key] = link["customer_id"]
                        elif self.links.get(key) == link["customer_id"]:
                            del self.links[key]
        finally:
            await consumer.stop()

    async def follow_commands(self) -> None:
        consumer = AIOKafkaConsumer(
            self.prefix + ACCOUNT_COMMANDS,
            bootstrap_servers=self.stack.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await self._start_consumer(consumer)
        try:
            while not self._stopping.is_set():
                for records in (await _poll(consumer)).values():
                    for record in records:
                        await self.liscio.apply(AccountCommand.model_validate_json(record.value))
        finally:
            await consumer.stop()

    async def follow_requests(self) -> None:
        """The emulator keeps the last 200,000 requests; collected as they come."""
        while not self._stopping.is_set():
            await self._collect_requests()
            await asyncio.sleep(2)

    async def _collect_requests(self) -> None:
        try:
            fresh = await self.admin.requests(since_seq=self._last_seq)
        except Exception:
            return
        finished = [r for r in fresh if r["status"] is not None or r["dropped"]]
        in_flight = [r["seq"] for r in fresh if r["status"] is None and not r["dropped"]]
        if in_flight:
            finished = [r for r in finished if r["seq"] < min(in_flight)]
        if finished:
            self.requests.extend(finished)
            self._last_seq = finished[-1]["seq"]

    async def _start_consumer(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                await consumer.start()
                return
            except Exception:
                await asyncio.sleep(1)

    # converging and the oracle ----------------------------------------------------------
    async def converge(self) -> dict[str, Any]:
        """After the last fault: every firm's final Sync Now, then the oracle until it
        passes (or the allowance runs out)."""
        for firm in self.liscio.firms.values():
            await self._quietly(self.admin.set_faults(firm.realm_id, fault_5xx_rate=0.0))
            await self._quietly(self.admin.set_faults(firm.realm_id, drop_rate=0.0, slow_rate=0.0))
            await self._quietly(self.admin.set_limits(firm.realm_id, max_requests_per_window=500))
        last_fault = time.monotonic()
        for firm in self.liscio.firms.values():
            await self._request_sync(firm)
        deadline = last_fault + self.params.converge_timeout
        verdict: dict[str, Any] = {}
        while time.monotonic() < deadline:
            await self._collect_requests()
            verdict = await self.oracle()
            if verdict["converged"]:
                break
            await asyncio.sleep(2)
        verdict["seconds_to_converge"] = round(time.monotonic() - last_fault, 1)
        verdict["after_the_last_fault"] = self._after(time.time() - (time.monotonic() - last_fault))
        return verdict

    def _after(self, moment: float) -> dict[str, Any]:
        """What QuickBooks saw from `moment` (the last fault) on, per realm: requests, how
        many were writes, and when the last write came (seconds after `moment`): a backlog
        that the realms' quotas drain, or the system waiting on something."""
        figures: dict[str, Any] = {}
        for firm in self.liscio.firms.values():
            later = [
                r
                for r in self.requests
                if r["realm_id"] == firm.realm_id and r["started_at"] >= moment
            ]
            writes = [r["started_at"] for r in later if r["operation"] == "customer.write"]
            throttled = [
                r["started_at"]
                for r in self.requests
                if r["realm_id"] == firm.realm_id and r["status"] == 429
            ]
            figures[firm.realm_id] = {
                # A 429 asks the realm's callers to wait (Retry-After, up to a minute):
                # how long before the last fault the realm's last one came.
                "last_429_before_s": round(moment - max(throttled), 1) if throttled else None,
                "requests": len(later),
                "writes": len(writes),
                "last_write_after_s": round(max(writes) - moment, 1) if writes else None,
                "busiest_60s": _busiest_window(later, 60.0).get(firm.realm_id, 0),
            }
        return figures

    async def oracle(self) -> dict[str, Any]:
        lost: list[str] = []
        wrong: list[str] = []
        unlinked: list[str] = []
        extra_links: list[str] = []
        problems: list[str] = []
        for firm in self.liscio.firms.values():
            customers = {c["Id"]: c for c in await self.admin.customers(firm.realm_id)}
            for account in firm.accounts.values():
                customer_id = self.links.get((firm.firm_id, account.id))
                expect_link = (
                    not account.archived
                    and account.ever_client
                    and account.id not in firm.gone_in_quickbooks
                    and not (account.kind == "convert" and account.status == "Prospect")
                )
                where = f"{firm.firm_id}/{account.id} ({account.kind})"
                if not expect_link:
                    if customer_id is not None and (
                        account.archived or account.id in firm.gone_in_quickbooks
                    ):
                        extra_links.append(where)
                    continue
                if customer_id is None:
                    unlinked.append(where)
                    continue
                wanted_customer = firm.created_in_liscio.get(account.id)
                if wanted_customer is not None and customer_id != wanted_customer:
                    extra_links.append(f"{where}: linked to {customer_id}, not {wanted_customer}")
                    continue
                customer = customers.get(customer_id)
                if customer is None or not customer.get("Active", True):
                    extra_links.append(f"{where}: customer {customer_id} not active")
                    continue
                have, want = synced_fields_from_qbo(customer), account.synced()
                for name in ("address", "phone", "website"):
                    wanted = want.get(name)
                    if wanted is None or have.get(name) == wanted:
                        continue
                    older = {s.get(name) for s in firm.history[account.id]}
                    target = lost if have.get(name) in older else wrong
                    target.append(f"{where} {name}: {have.get(name)!r} != {wanted!r}")
        problems.extend(self._history_violations())
        problems.extend(f"the API refused Create in Liscio: {r}" for r in self.api_refusals)
        letters = await self._dead_letters()
        reconnects = await self._connections_needing_reconnect()
        return {
            "converged": not (
                lost or wrong or unlinked or extra_links or problems or letters or reconnects
            ),
            "connections_needing_reconnect": reconnects,
            "lost_updates": len(lost),
            "wrong_values": len(wrong),
            "not_linked": len(unlinked),
            "linked_but_must_not_be": len(extra_links),
            "history_violations": problems,
            "dead_letters_for_valid_events": letters,
            "examples": (lost + wrong + unlinked + extra_links)[:10],
        }

    def _history_violations(self) -> list[str]:
        """From the emulator's log of every request: creates (two for one account's name, a
        Prospect's), names written by an update, and the quota."""
        problems: list[str] = []
        firms = {firm.realm_id: firm for firm in self.liscio.firms.values()}
        # Per account, the distinct creates QuickBooks carried out for it: a create answered
        # again for its requestid (a retry, a replay after a crash) is the same customer.
        creates: dict[tuple[str, str], set[str]] = defaultdict(set)
        for request in self.requests:
            body = request.get("write_body")
            if request["operation"] != "customer.write" or not isinstance(body, dict):
                continue
            firm = firms.get(request["realm_id"] or "")
            if body.get("Id") is None:
                name = str(body.get("DisplayName", "")).casefold()
                account_id = firm.names.get(name) if firm else None
                account = firm.accounts.get(account_id or "") if firm else None
                if request["status"] == 200 and firm and account_id:
                    creates[(firm.firm_id, account_id)].add(str(request["request_id"]))
                if account is not None and account.kind == "prospect":
                    problems.append(f"a Prospect created: {name}")
            elif "DisplayName" in body:
                problems.append(f"a name written: customer {body.get('Id')}")
        for (firm_id, account_id), request_ids in creates.items():
            count = len(request_ids) + (
                account_id in self.liscio.firms[firm_id].customer_made_by_a_user
            )
            if count > 1:
                problems.append(f"{count} customers created for {firm_id}/{account_id}")
        self.busiest_window = _busiest_window(self.requests, 60.0)
        # The quota: a 429 that no injected burst explains means our processes together
        # sent more than QuickBooks allows (500 a minute, 10 at once per realm).
        self.quota_exceeded = Counter(
            f"{request['realm_id']} "
            + ("in flight" if request["in_flight_at_arrival"] >= 10 else "per minute")
            for request in self.requests
            if request["status"] == 429
            and not any(
                start <= request["started_at"] <= end
                for start, end in self.bursts.get(request["realm_id"], [])
            )
        )
        return problems

    async def _connections_needing_reconnect(self) -> int:
        """What a firm would see: its QuickBooks connection asking to be reconnected (a
        refresh token lost while processes refreshing it were killed). The only thing the
        harness reads of the services' tables."""
        try:
            pool = await connect_pool(self.database_url, attempts=3, max_size=1)
        except Exception:
            return -1  # the database unreachable: not converged yet
        try:
            return await count_needing_reconnect(pool)
        finally:
            await pool.close()

    async def _dead_letters(self) -> int:
        total = 0
        for spec in all_specs():
            if not spec.has_dlq:
                continue
            consumer = AIOKafkaConsumer(
                self.prefix + dlq_of(spec.name),
                bootstrap_servers=self.stack.kafka_bootstrap,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            try:
                await consumer.start()
                records = await consumer.getmany(timeout_ms=500)
                total += sum(len(batch) for batch in records.values())
            except Exception:
                continue
            finally:
                await consumer.stop()
        return total

    # plumbing -------------------------------------------------------------------------
    async def _wait_for(self, probe: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not await probe():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout} s")
            await asyncio.sleep(0.2)

    async def _quietly(self, call: Any) -> bool:
        """Admin calls are the test's, not the system's: one that fails is skipped."""
        try:
            await call
            return True
        except Exception:
            return False

    async def stop(self) -> None:
        self._stopping.set()
        for process in self.services.values():
            process.terminate()
        for process in self.services.values():
            with contextlib.suppress(AssertionError):  # killed after the timeout
                process.stop(timeout=20)
        self.emulator.kill()
        await self.admin.aclose()
        await self.api.aclose()
        await self.producer.stop()
        if self.params.keep:
            print(f"chaos: kept database {self.database}, topics {self.prefix}*", flush=True)
            return
        await drop_database(self.stack.database_url, self.database)
        await self._delete_topics()

    async def _delete_topics(self) -> None:
        """The run's topics go with it: every run leaves the broker as it found it, so the
        next run's broker restart has no more logs to recover than this one's."""
        with contextlib.suppress(Exception):
            async with kafka_admin(self.stack.kafka_bootstrap, attempts=3) as admin:
                mine = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
                if mine:
                    await admin.delete_topics(mine)


def _controller_port() -> str | None:
    """The controller port of the running broker, from the configuration services.sh wrote."""
    config = REPO / ".run" / "kafka" / "server.properties"
    for line in config.read_text().splitlines() if config.exists() else []:
        if line.startswith("controller.quorum.voters=") or line.startswith(
            "controller.quorum.bootstrap.servers="
        ):
            return line.rsplit(":", 1)[1].strip()
    return None


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _poll(consumer: AIOKafkaConsumer) -> dict[Any, list[Any]]:
    try:
        fetched: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=300)
        return fetched
    except Exception:  # the broker restarting: the consumer reconnects by itself
        await asyncio.sleep(1)
        return {}


def _busiest_window(requests: list[dict[str, Any]], window: float) -> dict[str, int]:
    """Per realm, the most requests QuickBooks admitted (any answer but 429) in any
    `window` seconds."""
    times: dict[str, list[float]] = defaultdict(list)
    for request in requests:
        if request["realm_id"] and request["status"] != 429:
            times[request["realm_id"]].append(request["started_at"])
    busiest = {}
    for realm, moments in times.items():
        moments.sort()
        start, most = 0, 0
        for end, moment in enumerate(moments):
            while moment - moments[start] >= window:
                start += 1
            most = max(most, end - start + 1)
        busiest[realm] = most
    return busiest


async def run(params: Params) -> dict[str, Any]:
    chaos = Chaos(params)
    started = time.monotonic()
    await chaos.start()
    followers = [
        asyncio.create_task(chaos.follow_links()),
        asyncio.create_task(chaos.follow_commands()),
        asyncio.create_task(chaos.follow_requests()),
        asyncio.create_task(chaos.ask_liscio_to_create()),
        asyncio.create_task(chaos.report_progress(started)),
    ]
    try:
        until = time.monotonic() + params.seconds
        await asyncio.gather(chaos.workload(until), chaos.faults(until))
        verdict = await chaos.converge()
    finally:
        await chaos.stop()
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    throttled = sum(1 for r in chaos.requests if r["status"] == 429)
    return {
        "params": {
            "firms": params.firms,
            "accounts_per_firm": params.accounts,
            "seconds_of_faults": params.seconds,
            "matchers": params.matchers,
            "pushers": params.pushers,
            "seed": params.seed,
        },
        "events_sent": sum(len(f.sent) for f in chaos.liscio.firms.values()),
        "redeliveries": chaos.liscio.redeliveries,
        "accounts_created_mid_run": chaos.created_mid_run,
        "creates_in_liscio_asked": chaos.creates_in_liscio_asked,
        "accounts_created_in_liscio": sum(
            len(f.created_in_liscio) for f in chaos.liscio.firms.values()
        ),
        "commands_applied_by_liscio": chaos.liscio.commands,
        "quickbooks_requests": len(chaos.requests),
        "quickbooks_429s": throttled,
        "busiest_60s_window_per_realm": chaos.busiest_window,
        "kills_survived": chaos.kills,
        "restarts_survived": chaos.restarts + chaos.broker_restarts + chaos.database_restarts,
        "broker_restarts": chaos.broker_restarts,
        "database_restarts": chaos.database_restarts,
        "emulator_faults": dict(chaos.faults_injected),
        "duplicates": sum("customers created for" in p for p in verdict["history_violations"]),
        "quota_exceeded_429s_outside_bursts": dict(chaos.quota_exceeded),
        **verdict,
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short variant of make test")
    parser.add_argument("--seconds", type=float, help="how long the faults last")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args(argv)
    # The harness's own clients see the broker restart on purpose: their reconnect chatter
    # would bury the figures.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    params = QUICK if args.quick else FULL
    if args.seconds is not None:
        params = replace(params, seconds=args.seconds)
    if args.seed is not None:
        params = replace(params, seed=args.seed)
    params = replace(params, keep=args.keep)
    result = asyncio.run(run(params))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["converged"] and not result["quota_exceeded_429s_outside_bursts"] else 1


if __name__ == "__main__":
    sys.exit(main())
