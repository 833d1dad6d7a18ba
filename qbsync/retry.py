"""The one failure policy: which errors say "wait and do the same work again", the one
backoff (with jitter) that every loop, consumer and start-up attempt pauses by, and the
bounded attempts at start.

Every foreign exception is put into qbsync's kinds (qbsync/errors.py) here, as httpx's
transports map their libraries' errors in one place: the consumers and loops ask
`is_transient` / `is_bad_input` and never name asyncpg's, aiokafka's or pydantic's types.
QuickBooks' HTTP errors are mapped by its client (qbsync/quickbooks/session.py and
errors.py) into QuickBooksUnavailable (Transient) and QuickBooksRefusal (RecordRefused).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from pydantic import ValidationError

from qbsync.errors import BadInput, DependencyUnavailable, Transient
from qbsync.waiting import wait_for_event

T = TypeVar("T")
log = logging.getLogger("qbsync.retry")

# Errors that say "try again later": the database restarting or dropping our connections,
# the broker unreachable or restarting, a network blip. Work that meets one is done again
# until it goes through; the message it came from is fine, so it is never dead-lettered.
_TRANSIENT_ERRORS = (
    Transient,
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,  # the server terminated the connection
    asyncpg.exceptions.ConnectionDoesNotExistError,  # ... while a statement ran on it
    KafkaConnectionError,
    KafkaTimeoutError,  # a send the broker did not acknowledge in time (it is down)
)
# What asyncpg says, as a plain InterfaceError, when the connection under a statement or a
# transaction died, or the pool is closing (the service is stopping): also "try again".
_LOST_CONNECTION = ("connection is closed", "released back to the pool", "pool is clos")
# At start, any error of these clients counts as "unreachable" (a wrong password too): it
# is reported in the attempts' log lines and with exit code 3, never as a traceback.
_DEPENDENCY_CLIENTS = frozenset({"aiokafka", "asyncpg", "kafka"})


def is_transient(error: BaseException) -> bool:
    """Whether `error` says "wait and do the same work again" (see _TRANSIENT_ERRORS; also
    a lost PostgreSQL connection and the errors aiokafka calls retriable)."""
    if isinstance(error, _TRANSIENT_ERRORS):
        return True
    if isinstance(error, KafkaError):
        return bool(error.retriable)
    return isinstance(error, asyncpg.InterfaceError) and any(
        words in str(error) for words in _LOST_CONNECTION
    )


def is_bad_input(error: BaseException) -> bool:
    """Whether `error` says the message itself is wrong (dead-lettered, never retried)."""
    return isinstance(error, BadInput | ValidationError)


async def with_backoff(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    attempts: int,
    first_delay: float = 0.5,
    max_delay: float = 8.0,
) -> T:
    """Call `attempt` until it succeeds, at most `attempts` times, one log line per failure."""
    backoff = Backoff(first=first_delay, cap=max_delay)
    last: BaseException | None = None
    for number in range(1, attempts + 1):
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc) and type(exc).__module__.split(".")[0] not in (
                _DEPENDENCY_CLIENTS
            ):
                raise
            last = exc
        log.warning(
            "%s unreachable (attempt %d of %d): %s", what, number, attempts, last or type(last)
        )
        if number < attempts:
            await asyncio.sleep(backoff.next_delay())
    raise DependencyUnavailable(f"{what} unreachable after {attempts} attempts: {last}")


@dataclass
class Backoff:
    """Pauses between attempts of work that must go on (a loop of a service, a message):
    about `first`, then twice as long each time up to `cap`; `reset()` after a success.
    Each pause is drawn between half its ceiling and the ceiling, so the instances that
    met one outage do not all try again at the same instant."""

    first: float = 0.2
    cap: float = 10.0
    failures: int = 0
    draw: Callable[[], float] = field(default=random.random, repr=False)

    def ceiling(self) -> float:
        """The longest the next pause may be."""
        return min(self.cap, self.first * 2.0**self.failures)

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        self.failures += 1
        return ceiling * (0.5 + self.draw() / 2)

    def reset(self) -> None:
        self.failures = 0


async def pause_after_failure(
    what: str, error: Exception, backoff: Backoff, stopping: asyncio.Event | None = None
) -> None:
    """One log line for a failed round of a loop that must not die (a warning when a
    dependency is down for now, an error with its cause otherwise), then a pause that
    ends early when `stopping` is set (without it, only cancelling the task ends it)."""
    delay = backoff.next_delay()
    if is_transient(error):
        log.warning("%s failed, retrying in %.1f s: %s", what, delay, error)
    else:
        log.error("%s failed, retrying in %.1f s", what, delay, exc_info=error)
    await wait_for_event(stopping or asyncio.Event(), delay)
