"""The composition root: the one way a qbsync service process starts, runs and stops.

`run(service, build)` is the whole of a service's `main()`:

1. settings are read (a bad one: one line and exit code 2), logging and tracing are set up
   (tracing only when OTEL_EXPORTER_OTLP_ENDPOINT is set: qbsync/tracing.py) and SIGTERM /
   SIGINT handlers are installed, before anything else happens;
2. the Runtime is started: the database pool and the unit of work, migrations, the topics,
   the producer, the dead-letter sink, the outbox relay and the QuickBooks client (made on
   first use); Kafka or PostgreSQL unreachable after the bounded attempts: exit code 3;
3. `build(runtime)` makes the service from those dependencies: its handlers, its consumers
   and background loops, its HTTP routes; then the HTTP server starts ("started");
4. the service's `serve(stopping)` runs until a signal sets `stopping`; the Runtime stops
   after it (exit code 0).

A signal while 2 or 3 are under way cancels the start where it is and stops what had
started, so nothing a service builds ever runs against a stopped Runtime.

Every service is a plain asyncio process. The importer, the matcher and the pusher serve
with `consume`: their consumers (qbsync/kafka: plain aiokafka, each committing its own
way) and their background loops; an HTTP API serves with its own server instead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from qbsync import tracing
from qbsync.config import Settings
from qbsync.errors import DependencyUnavailable
from qbsync.eventloop import tune_garbage_collector
from qbsync.runtime import Route, Runtime, exit_on_dependency_failure, settings_or_exit
from qbsync.waiting import finish_or_cancel

log = logging.getLogger("qbsync.bootstrap")
T = TypeVar("T")

# What still runs of a stopping service's background loops after this long is cancelled
# (a loop's round is done again by the next claimant or the next start: nothing is lost).
LOOP_GRACE_SECONDS = 10.0
EXIT_FAILED = 1

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # runs until the event is set


class Service(Protocol):
    """What `build` returns: a service made of the Runtime's dependencies."""

    @property
    def routes(self) -> Sequence[Route]: ...

    async def serve(self, stopping: asyncio.Event) -> None:
        """Run until `stopping` is set, then stop what it started and return."""


class Consumer(Protocol):
    """A Kafka consumer of qbsync/kafka (BatchConsumer, AcknowledgingConsumer, ConsumerLoop)."""

    async def start(self) -> None:
        """Connect (bounded attempts: DependencyUnavailable), subscribe, start consuming."""

    async def stop(self) -> None:
        """Let the work in hand finish (bounded), commit what is done, leave the group."""

    @property
    def consuming(self) -> asyncio.Task[None]:
        """The consuming task: it ends when stopped, or raises when it cannot go on."""


def group_of(service: str, settings: Settings) -> str:
    """The service's consumer group: `{prefix}qbsync-{service}` (what `qbsync lag` shows
    and `qbsync rewind --group` names)."""
    return f"{settings.QBSYNC_TOPIC_PREFIX}qbsync-{service}"


def run(service: str, build: Callable[[Runtime], Service]) -> None:
    """Start the service, serve until SIGTERM or SIGINT, stop (see the module's text)."""
    settings = settings_or_exit(service)
    traces = tracing.configure(service)
    try:
        with asyncio.Runner() as runner:
            runner.run(_run(Runtime(service, settings), build))
    finally:
        if traces is not None:
            traces.shutdown()  # sends the spans still buffered


async def _run(runtime: Runtime, build: Callable[[Runtime], Service]) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    async def start() -> Service:
        await runtime.start()
        made = build(runtime)
        # Readiness waits for the consumers' group assignment, unless there are none (the API).
        await runtime.serve_http(made.routes, consumes=getattr(made, "consumes_kafka", True))
        return made

    try:
        service = await unless_stopped(start(), stopping)
        if service is None:
            return
        tune_garbage_collector()  # start-up's objects live on: never walked again
        await service.serve(stopping)
    except DependencyUnavailable as exc:
        exit_on_dependency_failure(runtime.service, exc)
    finally:
        await runtime.stop()


async def unless_stopped(work: Awaitable[T], stopping: asyncio.Event) -> T | None:
    """`work`'s result, or None if `stopping` was set first (`work` is then cancelled
    where it is: a start waiting for a dependency, say)."""
    task = asyncio.ensure_future(work)
    waiting = asyncio.create_task(stopping.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not task.done():
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        if stopping.is_set():
            return None
        raise


async def consume(
    stopping: asyncio.Event,
    consumers: Sequence[Consumer],
    loops: Sequence[Loop] = (),
    loop_grace: float = LOOP_GRACE_SECONDS,
) -> None:
    """How the importer, the matcher and the pusher serve: start `consumers` ("ready" once
    all are subscribed), run `loops`, and when `stopping` is set stop the consumers (each
    finishes and commits what it has in hand) and give the loops `loop_grace` to end.
    A consumer that stops consuming by itself is an error: the service stops, exit code 1."""
    started: list[Consumer] = []
    tasks: list[asyncio.Task[None]] = []
    failed = False
    try:
        for consumer in consumers:
            started.append(consumer)  # stopped in the end even if its start was cut short
            if await unless_stopped(_started(consumer), stopping) is None:
                return
        log.info("ready")
        tasks = [asyncio.create_task(loop(stopping)) for loop in loops]
        waiting = asyncio.create_task(stopping.wait())
        consuming = {consumer.consuming for consumer in started}
        await asyncio.wait({waiting, *consuming}, return_when="FIRST_COMPLETED")
        waiting.cancel()
        for ended in consuming:
            if ended.done() and not stopping.is_set():
                failed = True
                error = None if ended.cancelled() else ended.exception()
                log.error("stopped consuming", exc_info=error)
    finally:
        stopping.set()  # the loops end too when a consumer failed
        for consumer in reversed(started):
            await consumer.stop()
        await finish_or_cancel(tasks, loop_grace)
    if failed:
        raise SystemExit(EXIT_FAILED)


async def _started(consumer: Consumer) -> Consumer:
    await consumer.start()
    return consumer
