"""`python -m services.api`: the API on QBSYNC_API_HOST:QBSYNC_API_PORT, served by
uvicorn in the process's own event loop, started and stopped with the process's runtime
(qbsync/runtime.py: settings, pool, unit of work, producer, QuickBooks client)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator

import uvicorn

from qbsync.db.migrate import pending_migrations
from qbsync.errors import ConfigurationError
from qbsync.process import run_until_signalled
from qbsync.runtime import EXIT_CONFIG, Runtime, settings_or_exit
from services.api.app import create_app
from services.api.auth import TokenVerifier
from services.api.deps import ApiDeps

SERVICE = "api"
log = logging.getLogger("qbsync.api")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process's (run_until_signalled) stop it."""

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


async def serve(runtime: Runtime, stopping: asyncio.Event) -> None:
    s = runtime.settings
    config = uvicorn.Config(
        create_app(deps_of(runtime)),
        host=s.QBSYNC_API_HOST,
        port=s.QBSYNC_API_PORT,
        log_config=None,
        access_log=False,  # services/api/middleware.py logs every request, with its user
        lifespan="off",
    )
    server = _Server(config)
    # Bound here, so that a port in use is one clear error and port 0 is logged as chosen.
    listening = config.bind_socket()
    port = listening.getsockname()[1]
    log.info("api listening", extra={"url": f"http://{s.QBSYNC_API_HOST}:{port}"})
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    # The API's own messages (Sync Now requests) leave through the outbox it writes them to.
    relaying = asyncio.create_task(runtime.outbox.run(stopping))
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.set()
    stop.cancel()
    await serving
    await relaying


def main() -> None:
    settings = settings_or_exit(SERVICE)
    try:
        settings.api_token_key()
    except ConfigurationError as exc:  # before connecting to anything: exit code 2
        print(f"{SERVICE}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    runtime = Runtime(SERVICE, settings)
    run_until_signalled(runtime, lambda stopping: serve(runtime, stopping))
