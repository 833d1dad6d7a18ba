"""Fixtures of the system tests: the whole system, started once per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from qbsync.db.pool import Pool
from qbsync.kafka.producer import Producer
from tests.integration.system import SERVICES, System, free_port, running_system
from tests.support.api import JWT_SECRET
from tests.support.polling import eventually
from tests.support.stack import Stack


@pytest_asyncio.fixture(scope="module")
async def system(
    pool: Pool, producer: Producer, stack: Stack, topics: str, service_env: dict[str, str]
) -> AsyncIterator[System]:
    bootstrap = stack.kafka_bootstrap
    async with running_system(pool, producer, bootstrap, topics, service_env) as running:
        yield running


@dataclass
class ApiSystem:
    """The whole system with the API process (`python -m services.api`), and a client of
    the API (no token: each request brings its own)."""

    system: System
    url: str
    client: httpx.AsyncClient


@pytest_asyncio.fixture(scope="module")
async def api_system(
    pool: Pool, producer: Producer, stack: Stack, topics: str, service_env: dict[str, str]
) -> AsyncIterator[ApiSystem]:
    port = free_port()
    env = {**service_env, "QBSYNC_API_PORT": str(port), "QBSYNC_API_JWT_SECRET": JWT_SECRET}
    async with (
        running_system(
            pool,
            producer,
            stack.kafka_bootstrap,
            topics,
            env,
            services=(*SERVICES, "services.api"),
        ) as running,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):

        async def answers() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(answers, timeout=60, what="the API ready")
        yield ApiSystem(running, f"http://127.0.0.1:{port}", client)
