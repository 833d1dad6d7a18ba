"""Bounded retries with exponential backoff for reaching Kafka and PostgreSQL at start."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from qbsync.errors import DependencyUnavailable

T = TypeVar("T")
log = logging.getLogger("qbsync.retry")


async def with_backoff(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    attempts: int,
    first_delay: float = 0.5,
    max_delay: float = 8.0,
) -> T:
    """Call `attempt` until it succeeds, at most `attempts` times, one log line per failure."""
    delay = first_delay
    last: BaseException | None = None
    for number in range(1, attempts + 1):
        try:
            return await attempt()
        except (OSError, ConnectionError, TimeoutError) as exc:
            last = exc
        except Exception as exc:  # client libraries wrap socket errors in their own types
            if type(exc).__module__.split(".")[0] not in {"aiokafka", "asyncpg", "kafka"}:
                raise
            last = exc
        log.warning(
            "%s unreachable (attempt %d of %d): %s", what, number, attempts, last or type(last)
        )
        if number < attempts:
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, max_delay)
    raise DependencyUnavailable(f"{what} unreachable after {attempts} attempts: {last}")
