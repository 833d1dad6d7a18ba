"""Joining a consumer group, the one way every consumer of the services does it."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from qbsync.retry import with_backoff


async def join_group(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    *,
    max_records: int,
    attempts: int,
    listener: ConsumerRebalanceListener | None = None,
) -> AIOKafkaConsumer:
    """A started aiokafka consumer of `topics` (prefixed) in `group` (prefixed), within
    `attempts` (else DependencyUnavailable). Offsets are committed by the caller once its
    work is done, never automatically; a group new to a topic starts at its beginning."""
    names = list(topics)
    # Without a listener the topics go to the constructor: the start then waits for their
    # metadata (a topic the broker creates on first use exists once it returns).
    consumer = AIOKafkaConsumer(
        *(names if listener is None else ()),
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_records,
    )
    try:
        await with_backoff("Kafka", consumer.start, attempts)
    except BaseException:  # unreachable, or the start was cut short by a signal
        await consumer.stop()
        raise
    if listener is not None:
        consumer.subscribe(names, listener=listener)
    return consumer
