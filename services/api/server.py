"""`python -m services.api`: the API on QBSYNC_API_HOST:QBSYNC_API_PORT, served by
uvicorn in the process's own event loop, started and stopped by the composition root
(qbsync/bootstrap.py: settings, pool, unit of work, producer, outbox relay, QuickBooks
client, signals)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from qbsync.bootstrap import run
from qbsync.db.migrate import pending_migrations
from qbsync.errors import ConfigurationError
from qbsync.runtime import EXIT_CONFIG, Route, Runtime, settings_or_exit
from services.api.app import create_app
from services.api.auth import TokenVerifier
from services.api.deps import ApiDeps

SERVICE = "api"
log = logging.getLogger("qbsync.api")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process's (qbsync/bootstrap.py) stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def deps_of(runtime: Runtime) -> ApiDeps:
    async def ready() -> bool:
        return not await pending_migrations(runtime.pool)

    return ApiDeps(
        settings=runtime.settings,
        uow=runtime.uow,
        quickbooks=runtime.quickbooks,
        producer=runtime.producer,
        tokens=TokenVerifier(runtime.settings),
        ready=ready,
    )


class Api:
    """The API as a service of the composition root."""

    routes: Sequence[Route] = ()  # none beside /health and /metrics on the service port
    consumes_kafka = False  # so its readiness never waits for a group assignment

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def serve(self, stopping: asyncio.Event) -> None:
        s = self.runtime.settings
        config = uvicorn.Config(
            create_app(deps_of(self.runtime)),
            host=s.QBSYNC_API_HOST,
            port=s.QBSYNC_API_PORT,
            log_config=None,
            access_log=False,  # services/api/middleware.py logs every request, with its user
            lifespan="off",
        )
        server = _Server(config)
        # uvicorn's serve() taken apart, to say "ready" once the socket accepts requests.
        config.load()
        server.lifespan = config.lifespan_class(config)
        listening = config.bind_socket()
        await server.startup(sockets=[listening])
        port = listening.getsockname()[1]
        log.info("ready", extra={"url": f"http://{s.QBSYNC_API_HOST}:{port}"})
        serving = asyncio.create_task(server.main_loop())
        # The API's own messages (Sync Now requests) leave through the outbox it writes.
        relaying = asyncio.create_task(self.runtime.outbox.run(stopping))
        waiting = asyncio.create_task(stopping.wait())
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.set()
        waiting.cancel()
        await serving
        await server.shutdown(sockets=[listening])
        await relaying


def main() -> None:
    settings = settings_or_exit(SERVICE)
    try:
        settings.api_token_key()
    except ConfigurationError as exc:  # before connecting to anything: exit code 2
        print(f"{SERVICE}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    run(SERVICE, Api)
