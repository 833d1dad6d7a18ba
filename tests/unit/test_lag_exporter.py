"""The exporter's gauges from one snapshot (pure): names and labels as kafka-exporter's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from qbsync.kafka.lag import OffsetsSnapshot, PartitionOffsets
from qbsync.lag_metrics import metric_families

EVENTS = "p.liscio.account-events"
DLQ = "p.liscio.account-events.dlq"


def samples(snapshot: OffsetsSnapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    class Fixed:
        def collect(self):  # type: ignore[no-untyped-def]
            return metric_families(snapshot, "p.")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_lag_current_offset_end_offset_and_dead_letters_are_exported() -> None:
    snapshot = OffsetsSnapshot(
        taken_at=0.0,
        committed={
            "p.qbsync-matcher": {(EVENTS, 0): 4},
            "p.qbsync-dlq-redrive-liscio.account-events": {(DLQ, 0): 1},
        },
        partitions={
            (EVENTS, 0): PartitionOffsets(0, 10),
            (EVENTS, 1): PartitionOffsets(0, 2),
            (DLQ, 0): PartitionOffsets(0, 3),
        },
        collect_seconds=0.02,
    )
    got = samples(snapshot)
    group = ("consumergroup", "p.qbsync-matcher")
    assert got[("kafka_consumergroup_lag", (group, ("partition", "0"), ("topic", EVENTS)))] == 6
    assert got[("kafka_consumergroup_lag", (group, ("partition", "1"), ("topic", EVENTS)))] == 2
    assert got[("kafka_consumergroup_lag_sum", (group, ("topic", EVENTS)))] == 8
    assert (
        got[("kafka_consumergroup_current_offset", (group, ("partition", "0"), ("topic", EVENTS)))]
        == 4
    )
    # No commit on partition 1: no current offset rather than a made-up one.
    assert (
        "kafka_consumergroup_current_offset",
        (group, ("partition", "1"), ("topic", EVENTS)),
    ) not in got
    assert (
        got[("kafka_topic_partition_current_offset", (("partition", "0"), ("topic", EVENTS)))] == 10
    )
    assert got[("qbsync_dlq_messages", (("topic", DLQ),))] == 3
    assert got[("qbsync_dlq_pending_messages", (("topic", DLQ),))] == 2
    assert got[("qbsync_lag_collection_seconds", ())] == 0.02
