"""Fixtures of the system tests: the whole system, started once per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from qbsync.db.pool import Pool
from qbsync.kafka.producer import Producer
from tests.integration.system import System, running_system
from tests.support.stack import Stack


@pytest_asyncio.fixture(scope="module")
async def system(
    pool: Pool, producer: Producer, stack: Stack, topics: str, service_env: dict[str, str]
) -> AsyncIterator[System]:
    bootstrap = stack.kafka_bootstrap
    async with running_system(pool, producer, bootstrap, topics, service_env) as running:
        yield running
