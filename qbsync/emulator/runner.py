"""Run the emulator inside the current event loop, on a free port by default:

async with running_emulator(EmulatorConfig(latency_ms=80)) as emulator:
    emulator.base_url       # QBO_BASE_URL: paths /v3/company/{realm}/... below it
    emulator.token_url      # QBO_TOKEN_URL
    emulator.realm_id, emulator.refresh_token, emulator.client_id, emulator.client_secret
    await emulator.admin.bulk_customers(emulator.realm_id, 100_000)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from qbsync.emulator.admin_client import EmulatorAdmin
from qbsync.emulator.app import build_app
from qbsync.emulator.config import EmulatorConfig
from qbsync.emulator.oauth import DISCOVERY_PATH, TOKEN_PATH
from qbsync.emulator.store import Store


@dataclass
class RunningEmulator:
    config: EmulatorConfig
    store: Store  # the live state, for in-process inspection
    base_url: str
    admin: EmulatorAdmin

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def discovery_url(self) -> str:
        """What intuitlib's AuthClient takes as `environment` to find the token endpoint."""
        return self.base_url + DISCOVERY_PATH

    @property
    def realm_id(self) -> str:
        return self.config.realm_id

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    @property
    def refresh_token(self) -> str:
        """The refresh token valid for `realm_id` at start. It rotates on first use; ask
        `admin.issue_refresh_token(realm)` for more."""
        return self.store.initial_refresh_token

    def company_url(self, realm_id: str | None = None) -> str:
        return f"{self.base_url}/v3/company/{realm_id or self.realm_id}"


async def start_emulator(config: EmulatorConfig) -> tuple[web.AppRunner, RunningEmulator]:
    store = Store(config)
    runner = web.AppRunner(build_app(store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = config.port
    server = site._server
    if port == 0 and server is not None and server.sockets:  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    base_url = f"http://{config.host}:{port}"
    return runner, RunningEmulator(config, store, base_url, EmulatorAdmin(base_url))


@asynccontextmanager
async def running_emulator(config: EmulatorConfig | None = None) -> AsyncIterator[RunningEmulator]:
    runner, emulator = await start_emulator(config or EmulatorConfig())
    try:
        yield emulator
    finally:
        await emulator.admin.aclose()
        await runner.cleanup()
