"""Per-message metrics for every consumer.

Wrap the handling of one message in `observe_message(topic)`:

    for record in records:
        with observe_message(ACCOUNT_EVENTS) as observed:
            ...

It counts the message as consumed, times it into the processing histogram and counts it
as failed when the block raises (the exception goes on). A handler that recovers from a
failure itself, such as a message it dead-letters and skips, calls `observed.mark_failed()`
so that the failure is still counted; the dead-letter sink counts the dead letter.
`topic` is the catalogue name (unprefixed), so series are the same in tests and production.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from qbsync.metrics import MESSAGES_CONSUMED, MESSAGES_FAILED, PROCESSING_SECONDS


class ObservedMessage:
    """Handed to the block of `observe_message`; lets the handler report a handled failure."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.failed = False

    def mark_failed(self) -> None:
        """Count this message as failed even though the block does not raise."""
        self.failed = True


@contextmanager
def observe_message(topic: str) -> Iterator[ObservedMessage]:
    observed = ObservedMessage(topic)
    started = time.perf_counter()
    try:
        yield observed
    except Exception:
        observed.failed = True
        _count(observed, started)
        raise
    # Cancellation (a worker stopping mid-message) is not counted: the message was not
    # handled and will be delivered again.
    _count(observed, started)


def _count(observed: ObservedMessage, started: float) -> None:
    PROCESSING_SECONDS.labels(observed.topic).observe(time.perf_counter() - started)
    MESSAGES_CONSUMED.labels(observed.topic).inc()
    if observed.failed:
        MESSAGES_FAILED.labels(observed.topic).inc()
