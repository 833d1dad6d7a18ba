"""Fixtures shared by every test. Integration fixtures talk to the real stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from qbsync.db import connect_pool, migrate
from qbsync.db.pool import Pool
from qbsync.emulator import EmulatorConfig, RunningEmulator, running_emulator
from qbsync.kafka.admin import ensure_topics
from qbsync.kafka.producer import Producer
from tests.support.keys import TEST_SECRET_KEY
from tests.support.processes import ServiceProcess
from tests.support.stack import Stack, open_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    opened = open_stack()
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def session_tag() -> str:
    return uuid.uuid4().hex[:10]


@pytest_asyncio.fixture(scope="session")
async def database_url(stack: Stack, session_tag: str) -> AsyncIterator[str]:
    """A database of this test session's own, dropped at the end."""
    name = f"qbsync_test_{session_tag}"
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    parts = urlsplit(stack.database_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
def topic_prefix(session_tag: str) -> str:
    return f"t{session_tag}."


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    created = await connect_pool(database_url, attempts=3)
    await migrate(created)
    yield created
    await created.close()


@pytest_asyncio.fixture(scope="session")
async def topics(stack: Stack, topic_prefix: str) -> str:
    await ensure_topics(stack.kafka_bootstrap, topic_prefix)
    return topic_prefix


@pytest_asyncio.fixture(scope="session")
async def producer(stack: Stack, topics: str) -> AsyncIterator[Producer]:
    created = Producer(stack.kafka_bootstrap, topics)
    await created.start()
    yield created
    await created.stop()


@pytest.fixture(scope="session")
def service_env(stack: Stack, database_url: str, topic_prefix: str) -> dict[str, str]:
    """The environment a service under test runs with."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "DATABASE_URL": database_url,
        "QBSYNC_TOPIC_PREFIX": topic_prefix,
        "QBSYNC_SECRET_KEY": TEST_SECRET_KEY,
        "QBSYNC_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def spawn(service_env: dict[str, str]) -> Iterator[Callable[..., ServiceProcess]]:
    """Start services as processes; every one still running is stopped after the test."""
    started: list[ServiceProcess] = []

    def start(module: str, **extra_env: str) -> ServiceProcess:
        process = ServiceProcess(module, {**service_env, **extra_env})
        started.append(process)
        return process

    yield start
    # Signal every process first (one leaving a consumer group rebalances the others), then
    # wait for each; one that does not stop is killed, and none is ever left running.
    for process in started:
        process.terminate()
    failures = []
    for process in started:
        try:
            process.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, failures


def unique(prefix: str) -> str:
    """An id no other test uses (tests share one database per session)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    """A fresh in-process QuickBooks Online emulator per test, on a free port, with the real
    limits (500 requests/60 s, 10 in flight) and a sandbox-like demo realm.

    `base_url` (QBO_BASE_URL), `token_url` (QBO_TOKEN_URL), `client_id`, `client_secret`,
    `realm_id`, `refresh_token` (valid at start; rotates on use) and `admin` (EmulatorAdmin:
    realms, tokens, bulk seeding, user edits, request log, limits, faults, webhooks).
    """
    async with running_emulator(EmulatorConfig()) as running:
        yield running
