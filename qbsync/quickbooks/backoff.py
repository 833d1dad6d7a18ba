"""How long to wait before retrying a QuickBooks request (pure).

Exponential backoff with full jitter (a uniform draw between 0 and the exponential ceiling)
spreads retries of many coroutines apart; a Retry-After from the server is a floor.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# How a retry waits (asyncio.sleep; tests pass a recorder).
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    # Attempts in all for one request answered 5xx, a timeout or a connection error.
    attempts: int = 6
    # Attempts in all for one request answered 429 (with the quota shared by every process
    # a 429 is rare; when one comes, the realm is waited for, up to max_delay each time).
    throttled_attempts: int = 40
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A Retry-After longer than this is not honoured in full (a stuck header must not park
    # a service for hours); the retry budget still bounds the total.
    max_retry_after: float = 120.0

    def delay(
        self,
        retry_number: int,
        retry_after: float | None = None,
        draw: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry_number - 1))
        jittered = ceiling * draw()
        if retry_after is None:
            return jittered
        return max(jittered, min(retry_after, self.max_retry_after))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date; None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
