"""A plain aiokafka consumer loop handling a message at a time (the importer's).

At-least-once: offsets are committed only after the handler finished the batch. A message
the handler rejects goes to the dead-letter topic and the partition moves on; a message
that meets a dependency down (PostgreSQL restarting) waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from qbsync import tracing
from qbsync.kafka.dead_letters import DeadLetterSink
from qbsync.kafka.groups import join_group, leave_group
from qbsync.observability import observe_message
from qbsync.retry import Backoff, is_bad_input, is_transient, pause_after_failure
from qbsync.waiting import finish_or_cancel

log = logging.getLogger("qbsync.kafka.consumer")

MAX_RECORDS = 500
# How long a stopping consumer lets the message in hand finish.
STOP_GRACE_SECONDS = 10.0
Handler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]


class ConsumerLoop:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        group: str,
        handlers: dict[str, Handler],
        dead_letters: DeadLetterSink,
        *,
        connect_attempts: int = 10,
    ) -> None:
        self.prefix = prefix
        self.connect_attempts = connect_attempts
        self.handlers = handlers
        self.dead_letters = dead_letters
        self.bootstrap = bootstrap
        self.group = prefix + group
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (bounded attempts), subscribe, and consume in a task of its own."""
        self._consumer = await join_group(
            self.bootstrap,
            self.group,
            (self.prefix + topic for topic in self.handlers),
            max_records=MAX_RECORDS,
            attempts=self.connect_attempts,
        )
        self._task = asyncio.create_task(self._run(self._consumer))

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """The message in hand gets `grace` to finish; one cancelled is read again later."""
        self._stopping.set()
        if self._task is not None:
            await finish_or_cancel([self._task], grace)
        if self._consumer is not None:
            await leave_group(self._consumer, self.group)

    @property
    def consuming(self) -> asyncio.Task[None]:
        """Ends once stopped; raises if consuming could not go on."""
        assert self._task is not None, "not started"
        return self._task

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if not await self._handle(record):
                        return  # stopped while it waited: read again after a restart
            if batches:
                await consumer.commit()

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        """Handle `record` or set it aside; False if the loop stopped before either. A
        dependency that is down (`is_transient`) is waited out; any other failure sends the
        message to the dead-letter topic with its reason, and the partition moves on."""
        topic = record.topic.removeprefix(self.prefix)
        backoff = Backoff()
        offset = {"messaging.kafka.offset": record.offset}
        with (
            observe_message(topic) as observed,  # one message, however many attempts
            tracing.batch_span(f"consume {topic}", [record], offset),
        ):
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
                    if not is_bad_input(exc):  # a bug or a refusal: its cause is logged
                        log.exception(
                            "message failed", extra={"topic": topic, "offset": record.offset}
                        )
                    observed.mark_failed()
                    await self.dead_letters.send(topic, record, exc)
                    return True
