"""The lag exporter's gauges, computed from one offsets snapshot (pure).

Declared in qbsync/metrics.py; the kafka_* names and labels are kafka-exporter's.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from qbsync.kafka.dead_letter_topics import redrive_group, topics_with_dead_letters
from qbsync.kafka.lag import OffsetsSnapshot, build_report, dead_letter_backlogs
from qbsync.kafka.topics import dlq_of
from qbsync.metrics import (
    CONSUMER_GROUP_CURRENT_OFFSET,
    CONSUMER_GROUP_LAG,
    CONSUMER_GROUP_LAG_SUM,
    DLQ_MESSAGES,
    DLQ_PENDING_MESSAGES,
    LAG_COLLECTION_SECONDS,
    TOPIC_PARTITION_CURRENT_OFFSET,
    ExportedGauge,
)


def _family(gauge: ExportedGauge) -> GaugeMetricFamily:
    return GaugeMetricFamily(gauge.name, gauge.documentation, labels=list(gauge.labels))


def metric_families(snapshot: OffsetsSnapshot, prefix: str) -> list[GaugeMetricFamily]:
    """Every gauge the exporter publishes, from one snapshot (pure)."""
    lag, lag_sum = _family(CONSUMER_GROUP_LAG), _family(CONSUMER_GROUP_LAG_SUM)
    current = _family(CONSUMER_GROUP_CURRENT_OFFSET)
    for group in build_report(snapshot).groups:
        for row in group.partitions:
            labels = [group.group, row.topic, str(row.partition)]
            lag.add_metric(labels, row.lag)
            if row.committed_offset is not None:
                current.add_metric(labels, row.committed_offset)
        for topic, total in sorted(group.lag_by_topic().items()):
            lag_sum.add_metric([group.group, topic], total)

    ends = _family(TOPIC_PARTITION_CURRENT_OFFSET)
    for (topic, partition), offsets in sorted(snapshot.partitions.items()):
        ends.add_metric([topic, str(partition)], offsets.end)

    held, pending = _family(DLQ_MESSAGES), _family(DLQ_PENDING_MESSAGES)
    redrive_groups = {
        prefix + dlq_of(topic): redrive_group(prefix, topic) for topic in topics_with_dead_letters()
    }
    for backlog in dead_letter_backlogs(snapshot, redrive_groups):
        held.add_metric([backlog.topic], backlog.messages)
        pending.add_metric([backlog.topic], backlog.pending)

    took = _family(LAG_COLLECTION_SECONDS)
    took.add_metric([], snapshot.collect_seconds)
    return [lag, lag_sum, current, ends, held, pending, took]
