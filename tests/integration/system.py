"""The whole system under test: the QuickBooks emulator, the importer, the matcher and
the pusher as real processes on the real broker and database, and what a test needs to
drive them: a firm connected to a realm of its own, a Liscio stand-in, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbsync.crypto import TokenCipher
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount, LiscioStandIn
from qbsync.emulator.admin_client import EmulatorAdmin
from qbsync.kafka.producer import Producer
from tests.conftest import unique
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess
from tests.support.stack import REPO

QBSYNC = str(Path(sys.executable).parent / "qbsync")
CLIENT_ID, CLIENT_SECRET, VERIFIER = "test-client", "test-secret", "test-verifier"
SERVICES = ("services.importer", "services.matcher", "services.pusher")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_emulator(*flags: str) -> tuple[ServiceProcess, str]:
    port = free_port()
    argv = [
        QBSYNC,
        "emulator",
        "--port",
        str(port),
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--empty",
        *flags,
    ]
    return ServiceProcess("emulator", {}, argv), f"http://127.0.0.1:{port}"


def start_services(
    env: dict[str, str], which: tuple[str, ...] = SERVICES, importer_port: int = 0
) -> dict[str, ServiceProcess]:
    """The importer gets a known HTTP port: the emulator posts its webhooks there."""
    return {
        name.split(".")[1]: ServiceProcess(
            name,
            {**env, "QBSYNC_HTTP_PORT": str(importer_port)} if name == "services.importer" else env,
        )
        for name in which
    }


async def wait_until_ready(
    processes: dict[str, ServiceProcess], admin: EmulatorAdmin, timeout: float = 60.0
) -> None:
    """The emulator answering and every process ready, each within `timeout` (a benchmark
    on a loaded machine gives more: processes start slowly there)."""

    async def emulator_up() -> bool:
        try:
            await admin.webhook_deliveries()
            return True
        except Exception:
            return False

    await eventually(emulator_up, timeout=timeout / 2, what="emulator answering")

    async def started(name: str, process: ServiceProcess) -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"{name} exited:\n{process.output()[-3000:]}")
        return '"ready"' in process.output()  # its consumers are subscribed

    for name, process in processes.items():
        await eventually(
            lambda n=name, p=process: started(n, p), timeout=timeout, what=f"{name} started"
        )


@dataclass
class Firm:
    """A firm connected to a realm of its own in the emulator."""

    firm_id: str
    realm_id: str
    system: System
    liscio: LiscioStandIn

    async def customer(self, customer_id: str) -> dict[str, Any]:
        found = await self.system.admin.customer(self.realm_id, customer_id)
        assert found is not None, f"customer {customer_id} not in realm {self.realm_id}"
        return found

    async def customers_named(self, name: str) -> list[dict[str, Any]]:
        return [
            c
            for c in await self.system.admin.customers(self.realm_id)
            if c.get("DisplayName", "").casefold() == name.casefold()
        ]

    async def add_customer(self, name: str, **fields: Any) -> str:
        created = await self.system.admin.create_customer_as_user(
            self.realm_id, {"DisplayName": name, **fields}
        )
        return str(created["Id"])

    async def writes(self) -> list[dict[str, Any]]:
        """Customer writes QuickBooks applied for this realm (replayed retries excluded)."""
        return [
            r
            for r in await self.system.admin.requests(self.realm_id)
            if r["operation"] == "customer.write" and r["status"] == 200
        ]

    async def links(self) -> dict[str, Any]:
        return await self.system.cli_json("links", "--firm", self.firm_id, "--json")

    async def link_of(self, account_id: str) -> dict[str, Any] | None:
        for link in (await self.links())["links"]:
            if link["account_id"] == account_id:
                return dict(link)
        return None

    async def sync(self, *extra: str) -> dict[str, Any]:
        return await self.system.cli_json(
            "sync", "--firm", self.firm_id, "--wait", "--json", *extra
        )

    async def link_events(self, expect: int = 1) -> list[dict[str, Any]]:
        found = await read_topic(
            self.system.bootstrap, self.system.prefix + "sync.links", expect=10**6, timeout=2
        )
        return [v for k, v in found if k.startswith(f"{self.firm_id}:")]

    async def commands(self) -> list[dict[str, Any]]:
        found = await read_topic(
            self.system.bootstrap,
            self.system.prefix + "liscio.account-commands",
            expect=10**6,
            timeout=2,
        )
        return [v for k, v in found if k.startswith(f"{self.firm_id}:")]


@dataclass
class System:
    admin: EmulatorAdmin
    base_url: str
    pool: Pool
    producer: Producer
    bootstrap: str
    prefix: str
    env: dict[str, str]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def new_firm(
        self, *customers: dict[str, Any], connect: bool = True, liscio_answers: bool = True
    ) -> Firm:
        """`liscio_answers=False`: Liscio never applies the firm's commands (an outage)."""
        realm = await self.admin.create_realm(contents="empty")
        firm = Firm(unique("firm"), str(realm["realm_id"]), self, None)  # type: ignore[arg-type]
        firm.liscio = LiscioStandIn(self.producer, self.bootstrap, firm.firm_id)
        if liscio_answers:
            self._tasks.append(asyncio.create_task(firm.liscio.apply_commands(self._stopping)))
        for customer in customers:
            await firm.add_customer(**customer)
        if connect:
            await store_connection(
                self.pool,
                TokenCipher(self.env["QBSYNC_SECRET_KEY"]),
                firm.firm_id,
                firm.realm_id,
                str(realm["refresh_token"]),
            )
        return firm

    async def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        process = await asyncio.create_subprocess_exec(
            QBSYNC,
            *args,
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        result = subprocess.CompletedProcess(
            args, process.returncode or 0, out.decode(), err.decode()
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"qbsync {' '.join(args)} exited {result.returncode}: {result.stderr}"
            )
        return result

    async def cli_json(self, *args: str, check: bool = False) -> dict[str, Any]:
        result = await self.cli(*args, check=check)
        try:
            document: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"qbsync {' '.join(args)}: no JSON ({result.stderr})") from None
        return document

    async def close(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Services first, all signalled at once; the emulator they call goes last. A process
        # that does not stop is killed: none is left running.
        ordered = list(reversed(self.processes.values()))
        for process in ordered[:-1]:
            process.terminate()
        failures = []
        for process in ordered:
            try:
                process.stop()
            except AssertionError as exc:
                failures.append(str(exc))
        await self.admin.aclose()
        assert not failures, failures


@asynccontextmanager
async def running_system(
    pool: Pool,
    producer: Producer,
    bootstrap: str,
    prefix: str,
    base_env: dict[str, str],
    *emulator_flags: str,
    services: tuple[str, ...] = SERVICES,
) -> AsyncIterator[System]:
    emulator, base_url = start_emulator(*emulator_flags)
    importer_port = free_port()
    env = {
        "QBSYNC_CDC_INTERVAL_SECONDS": "1",
        **base_env,
        "QBO_BASE_URL": base_url,
        "QBO_TOKEN_URL": base_url + "/oauth2/v1/tokens/bearer",
        "QBO_CLIENT_ID": CLIENT_ID,
        "QBO_CLIENT_SECRET": CLIENT_SECRET,
        "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER,
    }
    processes = {"emulator": emulator}
    for name, process in start_services(env, services, importer_port).items():
        processes[name] = process
    system = System(
        EmulatorAdmin(base_url), base_url, pool, producer, bootstrap, prefix, env, processes
    )
    try:
        await wait_until_ready(
            {k: v for k, v in processes.items() if k != "emulator"}, system.admin
        )
        await system.admin.set_webhook(
            f"http://127.0.0.1:{importer_port}/webhooks/quickbooks", VERIFIER, batch_ms=50
        )
        yield system
    finally:
        await system.close()


def find(items: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [i for i in items if all(i.get(k) == v for k, v in match.items())]


AccountFactory = Callable[..., LiscioAccount]
