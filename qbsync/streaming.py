"""Faust apps for the matcher and the pusher, set up one way.

Each service builds its app with `create_app` (its timers and tasks) and names its inputs:
`BatchInput`s, read by a `BatchConsumer` in the same worker a batch at a time
(qbsync/kafka/batches.py, the matcher), or an `AckedInput`, read by an
`AcknowledgingConsumer` that commits only what its handler acknowledged
(qbsync/kafka/acks.py, the pusher). It runs with `run_worker`, which starts the shared
Runtime first (so a missing database gives one clear line, not a faust traceback) and
stops it with the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mode import Service
from mode.threads import WorkerThread

from qbsync.config import Settings
from qbsync.errors import DependencyUnavailable
from qbsync.eventloop import tune_garbage_collector
from qbsync.kafka.acks import AckedInput, AcknowledgingConsumer
from qbsync.kafka.batches import BatchConsumer, BatchInput
from qbsync.runtime import Runtime, exit_on_dependency_failure

log = logging.getLogger("qbsync.streaming")

SESSION_TIMEOUT_SECONDS = 10.0
# How long a stopping worker waits for faust's consumer thread (mode's default: 60 s). A
# clean stop takes about a second, a stop in the middle of a join up to a session; seen
# once, a thread that never finished: the worker then stopped a minute after the signal.
AIOKafkaConsumerThread.shutdown_timeout = 2 * SESSION_TIMEOUT_SECONDS


def group_of(service: str, settings: Settings) -> str:
    """The service's consumer group: `{prefix}qbsync-{service}` (what `qbsync lag` shows
    and `qbsync rewind --group` names)."""
    return f"{settings.QBSYNC_TOPIC_PREFIX}qbsync-{service}"


def create_app(service: str, settings: Settings, *, with_agents: bool = True) -> faust.App:
    """`with_agents=False`: the app only runs timers and tasks (its inputs are read by a
    BatchConsumer), so faust starts no consumer of its own, which would otherwise fail to
    subscribe to nothing, and would join the service's group with faust's own protocol."""
    brokers = ";".join(
        f"kafka://{server.strip()}" for server in settings.KAFKA_BOOTSTRAP_SERVERS.split(",")
    )
    app = faust.App(
        group_of(service, settings),  # the consumer group of its agents
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
        # Instead of faust's 60 s (10 s is aiokafka's default, and the batch consumer's). A
        # member that died, or left while its join was pending, holds every other member's join
        # until its session expires: with 60 s, a pusher restarted (or stopped) right after
        # such an exit waited up to a minute, and a dead instance's partitions waited as long.
        broker_session_timeout=SESSION_TIMEOUT_SECONDS,
        broker_heartbeat_interval=SESSION_TIMEOUT_SECONDS / 3,
    )
    if not with_agents:
        app.boot_strategy = BootStrategy(app, enable_kafka_consumer=False)
    return app


class _RuntimeStopper(Service):
    """Stops the Runtime when the faust worker stops (after the app has stopped)."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime

    async def on_stop(self) -> None:
        await self.runtime.stop()


class _Worker(faust.Worker):
    def __init__(self, *args: Any, stop_requested: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_requested = stop_requested

    async def on_first_start(self) -> None:
        await super().on_first_start()  # installs faust's own signal handlers
        if self._stop_requested.is_set():
            # The signal came while ours were still installed: hand it to faust's.
            os.kill(os.getpid(), signal.SIGTERM)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        log.info("ready")  # the agents (or the batch consumer) are subscribed and consuming

    async def _stop_on_signal(self, signal: signal.Signals) -> None:
        # mode stops the services while the worker may still be starting them, and cancels
        # the start only afterwards: a service whose start was under way (the app, starting
        # its producer) then finished starting after its own stop and after the Runtime's,
        # and its tasks ran against a closed pool, crashing the worker (exit 1). So the start
        # ends first: cancelled, it stops where it is, and the stop finds nothing under way.
        starting = self._starting_fut
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.wait({starting}, timeout=SESSION_TIMEOUT_SECONDS)
        await super()._stop_on_signal(signal)


def run_worker(
    app: faust.App,
    runtime: Runtime,
    on_started: Callable[[], Awaitable[None]] | None = None,
    batch_inputs: Sequence[BatchInput[Any]] = (),
    acked_input: AckedInput | None = None,
) -> None:
    """Start the runtime, then the faust worker (and a BatchConsumer of `batch_inputs`, or
    an AcknowledgingConsumer of `acked_input`, in the service's group); returns when
    SIGTERM/SIGINT stopped it. The worker stops the app first, then the consumer (what it
    has in hand finishes and is committed), then the runtime."""
    tune_garbage_collector()
    loop = asyncio.new_event_loop()
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
    # Ours stay installed until faust's replace them, so there is no moment at which a
    # signal would kill the process outright (see _Worker.on_first_start).
    if stop_requested.is_set():
        loop.run_until_complete(runtime.stop())
        return
    services: list[Service] = [_RuntimeStopper(runtime, loop=loop)]
    settings = runtime.settings
    if acked_input is not None:
        services.append(
            AcknowledgingConsumer(
                settings.KAFKA_BOOTSTRAP_SERVERS,
                settings.QBSYNC_TOPIC_PREFIX,
                group_of(runtime.service, settings),
                acked_input,
                connect_attempts=settings.QBSYNC_CONNECT_ATTEMPTS,
                loop=loop,
            )
        )
    if batch_inputs:
        services.append(
            BatchConsumer(
                settings.KAFKA_BOOTSTRAP_SERVERS,
                settings.QBSYNC_TOPIC_PREFIX,
                group_of(runtime.service, settings),
                batch_inputs,
                runtime.dead_letters,
                connect_attempts=settings.QBSYNC_CONNECT_ATTEMPTS,
                loop=loop,
            )
        )
    worker = _Worker(
        app,
        *services,  # started in this order before the app, stopped after it in reverse
        loop=loop,
        loglevel=runtime.settings.QBSYNC_LOG_LEVEL,
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
        stop_requested=stop_requested,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    _exit_if_threads_hang_on()


def _exit_if_threads_hang_on() -> None:
    """faust's consumer runs in a thread of its own that is not a daemon; seen once: when
    stopped in the middle of joining its group, it never finished, and the process, its
    work done, never exited. Nothing is left to do by then (unacknowledged events come
    again), so say so and leave."""
    stuck = [
        thread.name
        for thread in threading.enumerate()
        if isinstance(thread, WorkerThread) and thread.is_alive()
    ]
    if stuck:
        log.error("threads did not stop with the worker; exiting", extra={"threads": stuck})
        logging.shutdown()
        os._exit(0)
