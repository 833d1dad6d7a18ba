"""Creating the catalogue's topics idempotently."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from qbsync.kafka.topics import all_specs
from qbsync.retry import with_backoff

log = logging.getLogger("qbsync.kafka")


async def connect_admin(bootstrap: str, attempts: int = 10) -> AIOKafkaAdminClient:
    async def attempt() -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            await admin.start()
        except BaseException:
            await admin.close()
            raise
        return admin

    return await with_backoff("Kafka", attempt, attempts)


async def ensure_topics(bootstrap: str, prefix: str = "", attempts: int = 10) -> list[str]:
    """Create every missing topic of the catalogue; returns the names created."""
    admin = await connect_admin(bootstrap, attempts)
    try:
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
    finally:
        await admin.close()
