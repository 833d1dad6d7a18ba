"""Joining a consumer group, the one way every consumer of the services does it."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from qbsync.kafka.membership import MEMBERSHIP
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
    consumer = AIOKafkaConsumer(
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
    # Fresh metadata first: a topic created just before (`topics ensure` at start, a test)
    # is then part of the first assignment, not of one after metadata's next refresh.
    await consumer.topics()
    MEMBERSHIP.joining(group)
    consumer.subscribe(names, listener=_HoldsAssignment(group, listener))
    return consumer


class _HoldsAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the process's readiness (qbsync/kafka/membership.py) when the group's
    assignment is held, then hands the rebalance to the consumer's own listener."""

    def __init__(self, group: str, inner: ConsumerRebalanceListener | None) -> None:
        self.group = group
        self.inner = inner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        MEMBERSHIP.revoked(self.group)
        if self.inner is not None:
            await self.inner.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if self.inner is not None:
            await self.inner.on_partitions_assigned(assigned)
        MEMBERSHIP.assigned(self.group)


async def leave_group(consumer: AIOKafkaConsumer, group: str) -> None:
    """Stop a consumer `join_group` made: from now on the process is not ready for work."""
    MEMBERSHIP.left(group)
    await consumer.stop()
