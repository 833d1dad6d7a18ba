"""Producing many messages at once (an import's whole realm) at librdkafka's speed.

aiokafka costs 25-35 µs of Python per message; librdkafka's produce() about 1 µs, batching
and sending from its own threads. Messages are not confirmed one by one: a batch is
confirmed as a whole by `BulkBatch.confirm()` (flush, then a check that none failed), and
the caller marks its work done only after that, so delivery stays at-least-once.

Same settings as the aiokafka `Producer` where they matter: acks=all (librdkafka's
idempotence stays on: it recovers its sequence numbers after a broker restart, which
aiokafka's does not), and Kafka's default partitioner (murmur2 of the key, like
aiokafka's DefaultPartitioner), so a key lands on the same partition whichever producer
sent it and per-key order holds.
"""

from __future__ import annotations

import asyncio
import threading
import time

from confluent_kafka import KafkaError, Message
from confluent_kafka import Producer as LibrdkafkaProducer

from qbsync import tracing
from qbsync.metrics import MESSAGES_PRODUCED

# How long librdkafka keeps retrying a message before reporting it failed (its default is
# 5 minutes; aiokafka gives up after about 40 s): a broker that is gone fails the import.
MESSAGE_TIMEOUT_MS = 60_000
# A full local queue (librdkafka holds up to 100,000 messages) is drained this long at a
# time before produce() is tried again.
FULL_QUEUE_WAIT_SECONDS = 0.05
CLOSE_WAIT_SECONDS = 5.0


class DeliveryFailed(Exception):
    """Some messages of a batch were not acknowledged by the broker."""


class BulkProducer:
    """One librdkafka producer per process, for batches of messages (`batch()`)."""

    def __init__(self, bootstrap: str, prefix: str = "") -> None:
        self.prefix = prefix
        self.failures = 0  # messages never acknowledged, since the start
        self._failures_lock = threading.Lock()
        self.last_failure: KafkaError | None = None
        self._producer = LibrdkafkaProducer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": "murmur2_random",
                "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                # Only failures call back into Python: a delivered message costs nothing.
                "delivery.report.only.error": True,
                "on_delivery": self._delivered,
            }
        )

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        # Runs in whichever thread polls or flushes: two overlapping batches may be both.
        if error is not None:
            with self._failures_lock:
                self.failures += 1
                self.last_failure = error

    def batch(self, topic: str) -> BulkBatch:
        return BulkBatch(self, topic)

    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: tracing.Headers | None = None,
    ) -> None:
        """Queue one message (prefixed topic name). Blocks only when librdkafka's queue is
        full, for as long as it takes to make room."""
        while True:
            try:
                if headers is None:
                    self._producer.produce(self.prefix + topic, value, key)
                else:
                    self._producer.produce(self.prefix + topic, value, key, headers=headers)
                return
            except BufferError:
                self._producer.poll(FULL_QUEUE_WAIT_SECONDS)

    def serve_callbacks(self) -> None:
        """Hand over failure reports queued so far (never blocks)."""
        self._producer.poll(0)

    async def flush(self) -> None:
        """Wait, off the event loop, until every queued message was acknowledged or failed."""
        deadline = time.monotonic() + MESSAGE_TIMEOUT_MS / 1000 * 2
        while await asyncio.to_thread(self._producer.flush, 1.0) > 0:
            if time.monotonic() > deadline:  # librdkafka should have given up by now
                raise DeliveryFailed("messages still queued after the delivery timeout")

    async def close(self) -> None:
        # Messages still queued belong to a batch nobody confirmed, whose work is done again
        # (its step was not marked done): a short courtesy wait, not the delivery timeout.
        await asyncio.to_thread(self._producer.flush, CLOSE_WAIT_SECONDS)


class BulkBatch:
    """Messages to one topic that are confirmed together. Failures are counted producer-wide,
    so when batches overlap, one batch's failure fails the others too: never the other way
    round.

    Every message carries the trace context current when the batch was made (an import's
    span), unless `send` is given the one of its own writer (an outbox row's)."""

    def __init__(self, producer: BulkProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._failures_before = producer.failures
        self._queued = 0
        self._headers = tracing.kafka_headers()

    def send(self, key: str, value: bytes, traceparent: str | None = None) -> None:
        headers = self._headers if traceparent is None else tracing.kafka_headers(traceparent)
        self._producer.produce(self._topic, key.encode(), value, headers)
        self._queued += 1
        if self._queued % 1000 == 0:
            self._producer.serve_callbacks()

    async def confirm(self) -> None:
        """Return once every message of the batch was acknowledged; raise DeliveryFailed
        when any was not (the caller then does its work again: at-least-once)."""
        await self._producer.flush()
        failed = self._producer.failures - self._failures_before
        if failed:
            raise DeliveryFailed(
                f"{failed} message(s) not acknowledged by Kafka: {self._producer.last_failure}"
            )
        MESSAGES_PRODUCED.labels(self._topic).inc(self._queued)
        self._queued = 0
