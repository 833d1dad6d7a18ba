"""Faust apps for the matcher and the pusher, set up one way.

Each service builds its app with `create_app`, declares its topics with `input_topic`
and runs with `run_worker`, which starts the shared Runtime first (so a missing
database gives one clear line, not a faust traceback) and stops it with the worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import faust
from mode import Service
from pydantic import BaseModel, ValidationError

from qbsync import metrics
from qbsync.config import Settings
from qbsync.errors import DependencyUnavailable
from qbsync.eventloop import new_event_loop
from qbsync.kafka.topics import spec_of
from qbsync.runtime import Runtime, exit_on_dependency_failure

log = logging.getLogger("qbsync.streaming")


def create_app(service: str, settings: Settings) -> faust.App:
    brokers = ";".join(
        f"kafka://{server.strip()}" for server in settings.KAFKA_BOOTSTRAP_SERVERS.split(",")
    )
    return faust.App(
        f"{settings.QBSYNC_TOPIC_PREFIX}qbsync-{service}",  # the consumer group
        broker=brokers,
        key_serializer="raw",
        value_serializer="raw",
        # State lives in PostgreSQL; faust's data dir only holds its own bookkeeping,
        # private to this process so instances on one host never collide.
        datadir=tempfile.mkdtemp(prefix=f"qbsync-{service}-"),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        producer_acks=-1,
    )


def input_topic(app: faust.App, settings: Settings, name: str) -> faust.TopicT:
    spec_of(name)  # only catalogued topics may be consumed
    return app.topic(
        settings.QBSYNC_TOPIC_PREFIX + name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


class _RuntimeStopper(Service):
    """Stops the Runtime when the faust worker stops (after the app has stopped)."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime

    async def on_stop(self) -> None:
        await self.runtime.stop()


class _Worker(faust.Worker):
    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        log.info("ready")  # the agents are subscribed and consuming


def run_worker(
    app: faust.App,
    runtime: Runtime,
    on_started: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start the runtime, then the faust worker; returns when SIGTERM/SIGINT stopped it."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    # A signal before faust installs its own handlers must still stop us cleanly.
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        loop.run_until_complete(runtime.start())
        if on_started is not None:
            loop.run_until_complete(on_started())
    except DependencyUnavailable as exc:
        exit_on_dependency_failure(runtime.service, exc)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    if stop_requested.is_set():
        loop.run_until_complete(runtime.stop())
        return
    worker = _Worker(
        app,
        _RuntimeStopper(runtime, loop=loop),
        loop=loop,
        loglevel=runtime.settings.QBSYNC_LOG_LEVEL,
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


M = TypeVar("M", bound=BaseModel)
BatchHandler = Callable[[list[M]], Awaitable[None]]

# Errors that say "try again later" (the database restarting, a network blip): the batch
# is retried until it goes through, so nothing is lost while a dependency is down.
TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)


async def consume_in_batches(
    stream: Any,  # a faust stream; StreamT does not declare take_events
    topic: str,
    model: type[M],
    handle: BatchHandler[M],
    runtime: Runtime,
    *,
    max_batch: int = 1000,
    within: float = 0.05,
) -> None:
    """The body of a batching agent: parse each message (invalid ones go to the dead-letter
    topic), hand the valid ones to `handle` as one batch. A batch that keeps failing for a
    reason other than a dependency being down is retried one message at a time, and the
    message that fails goes to the dead-letter topic with the error: the partition moves on."""
    async for events in stream.take_events(max_batch, within):
        started = time.perf_counter()
        parsed: list[tuple[Any, M]] = []
        for event in events:
            message = event.message
            try:
                parsed.append((message, model.model_validate_json(message.value)))
            except ValidationError as exc:
                metrics.MESSAGES_FAILED.labels(topic).inc()
                await runtime.dead_letters.send(
                    topic, message.partition, message.offset, message.key, message.value, exc
                )
        if parsed:
            await _handle_or_isolate(parsed, topic, handle, runtime)
        metrics.MESSAGES_CONSUMED.labels(topic).inc(len(events))
        metrics.PROCESSING_SECONDS.labels(topic).observe(
            (time.perf_counter() - started) / max(len(events), 1)
        )


async def _handle_or_isolate(
    parsed: list[tuple[Any, M]], topic: str, handle: BatchHandler[M], runtime: Runtime
) -> None:
    delay, attempt = 0.2, 0
    while True:
        attempt += 1
        try:
            await handle([value for _, value in parsed])
            return
        except TRANSIENT as exc:
            log.warning(
                "batch failed, will retry: %s", exc, extra={"topic": topic, "attempt": attempt}
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        except Exception as exc:
            metrics.MESSAGES_FAILED.labels(topic).inc(len(parsed))
            if len(parsed) == 1:
                message, _ = parsed[0]
                log.error(
                    "message failed: %s", exc, extra={"topic": topic, "offset": message.offset}
                )
                await runtime.dead_letters.send(
                    topic, message.partition, message.offset, message.key, message.value, exc
                )
                return
            log.warning(
                "batch failed, isolating the failing message: %s", exc, extra={"topic": topic}
            )
            for one in parsed:
                await _handle_or_isolate([one], topic, handle, runtime)
            return
