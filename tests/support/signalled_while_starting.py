"""A service told to stop while it is still starting, run as a process by
tests/integration/test_platform.py: `python -m tests.support.signalled_while_starting`.

SIGTERM arrives while its consumer connects, and that start never ends by itself (as a
start waiting for a broker that does not answer). The start must be cut short where it is,
what it had started stopped, and the service's loops must never run: started after the
Runtime stopped, they would meet a closed pool."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from qbsync.bootstrap import consume, run
from qbsync.runtime import Route, Runtime

SERVICE = "signalled-while-starting"
log = logging.getLogger("tests.signalled_while_starting")


class ConsumerSignalledWhileConnecting:
    async def start(self) -> None:
        log.info("signalled while starting")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.Event().wait()  # never connects

    async def stop(self) -> None:
        log.info("consumer stopped")

    @property
    def consuming(self) -> asyncio.Task[None]:
        raise AssertionError("never started")


class SignalledWhileStarting:
    routes: list[Route] = []

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def uses_the_database(self, stopping: asyncio.Event) -> None:
        await self.runtime.pool.fetchval("SELECT 1")
        log.info("task used the database")

    async def serve(self, stopping: asyncio.Event) -> None:
        await consume(stopping, [ConsumerSignalledWhileConnecting()], [self.uses_the_database])


if __name__ == "__main__":
    run(SERVICE, SignalledWhileStarting)
