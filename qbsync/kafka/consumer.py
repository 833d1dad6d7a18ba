"""A plain aiokafka consumer loop for services that are not faust apps (the importer).

At-least-once: offsets are committed only after the handler finished the batch. A message
the handler rejects goes to the dead-letter topic and the partition moves on; a message
that meets a dependency down (PostgreSQL restarting) waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from qbsync.errors import InvalidMessage
from qbsync.kafka.dead_letters import DeadLetterSink
from qbsync.kafka.membership import MEMBERSHIP
from qbsync.observability import observe_message
from qbsync.retry import Backoff, is_transient, pause_after_failure, with_backoff

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
        self.group = prefix + group
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
        )
        self._stopping = asyncio.Event()

    async def start(self, attempts: int = 10) -> None:
        async def attempt() -> None:
            await self._consumer.start()

        await with_backoff("Kafka", attempt, attempts)
        MEMBERSHIP.joining(self.group)
        self._consumer.subscribe(
            [self.prefix + topic for topic in self.handlers], listener=_Membership(self.group)
        )

    def stop_soon(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        if not await self._handle(record):
                            return  # stopped while it waited: read again after a restart
                if batches:
                    await self._consumer.commit()
        finally:
            MEMBERSHIP.left(self.group)
            await self._consumer.stop()

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        """Handle `record` or set it aside; False if the loop stopped before either. A
        dependency that is down (`is_transient`) is waited out; any other failure sends the
        message to the dead-letter topic with its reason, and the partition moves on."""
        topic = record.topic.removeprefix(self.prefix)
        backoff = Backoff()
        with observe_message(topic) as observed:  # one message, however many attempts
            while True:
                try:
                    await self.handlers[topic](record)
                    return True
                except Exception as exc:
                    if is_transient(exc):
                        await pause_after_failure(
                            f"{topic} message at offset {record.offset}",
                            exc,
                            backoff,
                            self._stopping,
                        )
                        if self._stopping.is_set():
                            return False
                        continue
                    if not isinstance(exc, ValidationError | InvalidMessage):
                        log.exception(
                            "message failed", extra={"topic": topic, "offset": record.offset}
                        )
                    observed.mark_failed()
                    await self.dead_letters.send(topic, record, exc)
                    return True


class _Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the process's readiness when the group's assignment is held."""

    def __init__(self, group: str) -> None:
        self.group = group

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        MEMBERSHIP.revoked(self.group)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        MEMBERSHIP.assigned(self.group)
