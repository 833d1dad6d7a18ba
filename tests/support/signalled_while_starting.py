"""A worker told to stop while it is still starting, run as a process by
tests/integration/test_platform.py: `python -m tests.support.signalled_while_starting`.

SIGTERM arrives while the faust app starts its producer, and that start would go on only
once the stop has closed the Runtime (what happened, by chance, to a pusher stopped right
after it started). The app's task uses the database: started after the Runtime stopped,
it would crash the worker."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from faust.transport.drivers.aiokafka import Producer

from qbsync.runtime import Runtime, settings_or_exit
from qbsync.streaming import create_app, run_worker

SERVICE = "signalled-while-starting"
log = logging.getLogger("tests.signalled_while_starting")

runtime_stopped = asyncio.Event()


class RuntimeThatSaysWhenStopped(Runtime):
    async def stop(self) -> None:
        await super().stop()
        runtime_stopped.set()


settings = settings_or_exit(SERVICE)
runtime = RuntimeThatSaysWhenStopped(SERVICE, settings)
app = create_app(SERVICE, settings, with_agents=False)
_start_producer = Producer.on_start


async def start_producer_after_the_runtime_stopped(self: Any) -> None:
    log.info("signalled while starting")
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(runtime_stopped.wait(), timeout=30)
    await _start_producer(self)


Producer.on_start = start_producer_after_the_runtime_stopped  # type: ignore[method-assign]


@app.task
async def uses_the_database() -> None:
    await runtime.pool.fetchval("SELECT 1")
    log.info("task used the database")


if __name__ == "__main__":
    run_worker(app, runtime)
