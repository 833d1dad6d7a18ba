"""A plain aiokafka consumer loop for services that are not faust apps (the importer).

At-least-once: offsets are committed only after the handler finished the batch. A message
the handler rejects as invalid goes to the dead-letter topic and the partition moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pydantic import ValidationError

from qbsync.errors import InvalidMessage
from qbsync.kafka.dead_letters import DeadLetterSink
from qbsync.observability import observe_message
from qbsync.retry import with_backoff

log = logging.getLogger("qbsync.kafka.consumer")

Handler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]


class ConsumerLoop:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        group: str,
        handlers: dict[str, Handler],
        dead_letters: DeadLetterSink,
    ) -> None:
        self.prefix = prefix
        self.handlers = handlers
        self.dead_letters = dead_letters
        self._consumer = AIOKafkaConsumer(
            *(prefix + topic for topic in handlers),
            bootstrap_servers=bootstrap,
            group_id=prefix + group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
        )
        self._stopping = asyncio.Event()

    async def start(self, attempts: int = 10) -> None:
        async def attempt() -> None:
            await self._consumer.start()

        await with_backoff("Kafka", attempt, attempts)

    def stop_soon(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        await self._handle(record)
                if batches:
                    await self._consumer.commit()
        finally:
            await self._consumer.stop()

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        topic = record.topic.removeprefix(self.prefix)
        try:
            with observe_message(topic):
                await self.handlers[topic](record)
        except (ValidationError, InvalidMessage) as exc:
            await self.dead_letters.send(
                topic, record.partition, record.offset, record.key, record.value, exc
            )
