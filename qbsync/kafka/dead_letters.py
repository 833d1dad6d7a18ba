"""Dead letters: a message we cannot process goes to `<topic>.dlq` with the reason."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import dlq_of
from qbsync.metrics import MESSAGES_DEAD_LETTERED
from schemas import DeadLetter

log = logging.getLogger("qbsync.dlq")


def describe(error: Exception) -> str:
    """A one-line reason a person can act on."""
    if isinstance(error, ValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()
        ]
        return "schema violation: " + "; ".join(problems[:5])
    return f"{type(error).__name__}: {error}"


class Received(Protocol):
    """A consumed message as aiokafka's ConsumerRecord gives it."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class DeadLetterSink:
    def __init__(self, producer: Producer, service: str) -> None:
        self.producer = producer
        self.service = service

    async def send(self, topic: str, message: Received, error: Exception | str) -> None:
        """`topic` is the unprefixed name of the topic the message came from."""
        partition, offset, key, value = (
            message.partition,
            message.offset,
            message.key,
            message.value,
        )
        reason = error if isinstance(error, str) else describe(error)
        letter = DeadLetter(
            error=reason,
            topic=topic,
            partition=partition,
            offset=offset,
            value_b64=base64.b64encode(value or b"").decode(),
            service=self.service,
            at=datetime.now(UTC),
        )
        await self.producer.send(dlq_of(topic), (key or b"").decode(errors="replace"), letter)
        MESSAGES_DEAD_LETTERED.labels(topic).inc()
        log.warning(
            "message sent to dead-letter topic",
            extra={"topic": topic, "partition": partition, "offset": offset, "reason": reason},
        )
