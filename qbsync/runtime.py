"""What every service process shares: settings, the database pool and the unit of work,
the producer, the dead-letter sink, the outbox relay, the QuickBooks client and the HTTP
server, started and stopped in one place (by qbsync/bootstrap.py, when the process starts)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp.typedefs import Handler

from qbsync import log as qlog
from qbsync.config import Settings, load_settings
from qbsync.crypto import TokenCipher
from qbsync.db import connect_pool, migrate
from qbsync.db.outbox import OutboxRelay
from qbsync.db.pool import Pool
from qbsync.db.quota import PostgresQuotaLedger
from qbsync.db.unit_of_work import PostgresUnitOfWork
from qbsync.errors import ConfigurationError, DependencyUnavailable
from qbsync.http import ServiceHttpServer
from qbsync.kafka.admin import ensure_topics
from qbsync.kafka.dead_letters import DeadLetterSink
from qbsync.kafka.membership import MEMBERSHIP
from qbsync.kafka.producer import Producer
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.postgres_tokens import PostgresTokenStore

log = logging.getLogger("qbsync.runtime")

Route = tuple[str, str, Handler]  # method, path, handler: served beside /health and /metrics

STOP_STEP_SECONDS = 10.0
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def settings_or_exit(service: str) -> Settings:
    """Settings, or one clear line naming the bad variable and exit code 2."""
    try:
        settings = load_settings()
        qlog.configure(service, settings.QBSYNC_LOG_LEVEL)
        return settings
    except ConfigurationError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


@dataclass
class Runtime:
    service: str
    settings: Settings
    pool: Pool = field(init=False)
    uow: PostgresUnitOfWork = field(init=False)  # what the use cases get: never the pool
    producer: Producer = field(init=False)
    dead_letters: DeadLetterSink = field(init=False)
    http: ServiceHttpServer = field(init=False)
    outbox: OutboxRelay = field(init=False)
    _quickbooks: QuickBooksClient | None = field(init=False, default=None)

    async def start(self) -> None:
        """Connect the dependencies (Kafka and PostgreSQL within QBSYNC_CONNECT_ATTEMPTS,
        else DependencyUnavailable). Each is kept once started, so `stop` stops exactly
        what a start cut short (by a signal) had started."""
        s = self.settings
        self.pool = await connect_pool(
            s.DATABASE_URL,
            s.QBSYNC_CONNECT_ATTEMPTS,
            max_size=30,
            application_name=f"qbsync-{self.service}",
        )
        self.uow = PostgresUnitOfWork(self.pool)
        await migrate(self.pool)
        await ensure_topics(
            s.KAFKA_BOOTSTRAP_SERVERS, s.QBSYNC_TOPIC_PREFIX, s.QBSYNC_CONNECT_ATTEMPTS
        )
        producer = Producer(s.KAFKA_BOOTSTRAP_SERVERS, s.QBSYNC_TOPIC_PREFIX)
        try:
            await producer.start(s.QBSYNC_CONNECT_ATTEMPTS)
        except BaseException:
            await producer.stop()
            raise
        self.producer = producer
        self.dead_letters = DeadLetterSink(self.producer, self.service)
        self.outbox = OutboxRelay(self.pool, self.producer)

    async def serve_http(self, routes: Sequence[Route] = (), consumes: bool = True) -> None:
        """/healthz, /readyz (PostgreSQL answers, the consumers hold their assignment),
        /metrics and the service's `routes`; logs "started"."""
        s = self.settings
        http = ServiceHttpServer(self.service, s.QBSYNC_HTTP_HOST, s.QBSYNC_HTTP_PORT)
        http.add_check("postgres", self._postgres_ok)
        if consumes:
            http.add_check("kafka", self._kafka_assignment_held)
        for method, path, handler in routes:
            http.app.router.add_route(method, path, handler)
        self.http = http
        await http.start()
        log.info("started", extra={"ready": f"http://{s.QBSYNC_HTTP_HOST}:{http.port}/readyz"})

    @property
    def quickbooks(self) -> QuickBooksClient:
        """The process's one QuickBooks client (each realm's quota shared with every
        process through PostgreSQL). It is
        made on the first call that needs QuickBooks, so a service without QuickBooks
        settings still starts and stores; that call then fails with a ConfigurationError
        naming the missing variable."""
        return cast(QuickBooksClient, _MadeOnFirstUse(self._make_quickbooks))

    def _make_quickbooks(self) -> QuickBooksClient:
        if self._quickbooks is None:
            tokens = PostgresTokenStore(self.pool, TokenCipher(self.settings.secret_key()))
            self._quickbooks = QuickBooksClient.from_settings(
                self.settings, tokens, PostgresQuotaLedger(self.pool)
            )
        return self._quickbooks

    async def stop(self) -> None:
        """Each part gets STOP_STEP_SECONDS: a stop must never hang the process (a pool
        waits for connections still checked out by work that was cancelled). Nothing is
        lost by cutting one short: uncommitted work is rolled back and done again."""
        # (what, how to stop it, what to do when that took too long), of what was started
        stops: list[tuple[str, Callable[[], Awaitable[None]], Callable[[], None] | None]] = []
        if self._quickbooks is not None:
            stops.append(("the QuickBooks client", self._quickbooks.aclose, None))
        if hasattr(self, "http"):
            stops.append(("the HTTP server", self.http.stop, None))
        if hasattr(self, "producer"):
            stops.append(("the producer", self.producer.stop, None))
        if hasattr(self, "pool"):
            stops.append(("the database pool", self.pool.close, self.pool.terminate))
        for what, stop, on_timeout in stops:
            try:
                await asyncio.wait_for(stop(), STOP_STEP_SECONDS)
            except TimeoutError:
                log.error("%s did not stop within %s s", what, STOP_STEP_SECONDS)
                if on_timeout is not None:
                    on_timeout()
            except Exception:
                log.exception("error while stopping %s", what)

    async def _postgres_ok(self) -> bool:
        return bool(await self.pool.fetchval("SELECT true"))

    async def _kafka_assignment_held(self) -> bool:
        return MEMBERSHIP.holds_assignment()


class _MadeOnFirstUse:
    def __init__(self, make: Callable[[], QuickBooksClient]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)


def exit_on_dependency_failure(service: str, exc: DependencyUnavailable) -> None:
    log.error("cannot start: %s", exc)
    print(f"{service}: {exc}", file=sys.stderr)
    raise SystemExit(EXIT_UNAVAILABLE)
