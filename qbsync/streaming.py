"""Faust apps for the matcher and the pusher, set up one way.

Each service builds its app with `create_app`, declares its topics with `input_topic`
and runs with `run_worker`, which starts the shared Runtime first (so a missing
database gives one clear line, not a faust traceback) and stops it with the worker.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from mode import Service

from qbsync.config import Settings
from qbsync.errors import DependencyUnavailable
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


def run_worker(
    app: faust.App,
    runtime: Runtime,
    on_started: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start the runtime, then the faust worker; returns when SIGTERM/SIGINT stopped it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(runtime.start())
        if on_started is not None:
            loop.run_until_complete(on_started())
    except DependencyUnavailable as exc:
        exit_on_dependency_failure(runtime.service, exc)
    worker = faust.Worker(
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
