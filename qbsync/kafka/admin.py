"""Creating the catalogue's topics idempotently."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from qbsync.kafka.topics import all_specs
from qbsync.retry import with_backoff

log = logging.getLogger("qbsync.kafka")


async def connect_admin(
    bootstrap: str, attempts: int = 10, request_timeout_ms: int = 10000
) -> AIOKafkaAdminClient:
    """A started admin client (the caller closes it), reached with bounded retries."""

    async def attempt() -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms
        )
        try:
            await admin.start()
        except BaseException:
            await admin.close()
            raise
        return admin

    return await with_backoff("Kafka", attempt, attempts)


@asynccontextmanager
async def kafka_admin(bootstrap: str, attempts: int = 10) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client for the block, closed after it."""
    admin = await connect_admin(bootstrap, attempts)
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(bootstrap: str, prefix: str = "", attempts: int = 10) -> list[str]:
    """Create every missing topic of the catalogue; returns the names created."""
    async with kafka_admin(bootstrap, attempts) as admin:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=prefix + spec.name,
                num_partitions=spec.partitions,
                replication_factor=1,
                topic_configs=spec.config(),
            )
            for spec in all_specs()
            if prefix + spec.name not in existing
        ]
        created: list[str] = []
        for topic in missing:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another instance created it first
        if created:
            log.info("created topics", extra={"topics": created})
        return created
