"""Moving a stopped consumer group back to the start of a topic, so that its service
reads the topic again from the beginning (e.g. the matcher over the compacted
`qbo.customers` after its database copy was lost)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from qbsync.errors import QbsyncError
from qbsync.kafka.admin import kafka_admin


class RewindError(QbsyncError):
    """The group could not be rewound (unknown topic, or members still running)."""


async def rewind_group(bootstrap: str, prefix: str, group: str, topic: str) -> int:
    """Commit the earliest offsets of every partition of `topic` for `group`; returns the
    number of partitions rewound. Kafka refuses while the group has active members, so the
    group's service must be stopped first."""
    async with kafka_admin(bootstrap, attempts=3) as admin:
        (described,) = await admin.describe_topics([prefix + topic])
    partitions = [p["partition"] for p in described["partitions"]]
    if described["error_code"] or not partitions:
        raise RewindError(f"topic {topic} not found")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=prefix + group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(prefix + topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        offsets = {tp: OffsetAndMetadata(await consumer.position(tp), "") for tp in tps}
        try:
            await consumer.commit(offsets)
        except Exception as exc:
            raise RewindError(
                f"group {group} could not be rewound ({type(exc).__name__}): stop its service first"
            ) from None
        return len(tps)
    finally:
        await consumer.stop()
