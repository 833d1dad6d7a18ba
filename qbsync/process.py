"""Running a plain asyncio service in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from qbsync.errors import DependencyUnavailable
from qbsync.eventloop import tune_garbage_collector
from qbsync.runtime import Runtime, exit_on_dependency_failure


def run_until_signalled(
    runtime: Runtime, serve: Callable[[asyncio.Event], Awaitable[None]]
) -> None:
    """Start the runtime, run `serve(stopping)` until a signal sets `stopping`, then stop."""

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await runtime.start()
        except DependencyUnavailable as exc:
            exit_on_dependency_failure(runtime.service, exc)
        try:
            await serve(stopping)
        finally:
            await runtime.stop()

    tune_garbage_collector()
    with asyncio.Runner() as runner:
        runner.run(main())
