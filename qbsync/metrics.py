"""Every Prometheus metric the services export, declared once.

Each service process serves these on its own /metrics (qbsync/http.py); Prometheus adds
the job and instance labels, so no metric carries a service label of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "qbsync_messages_consumed_total", "Messages read from an input topic", ["topic"]
)
MESSAGES_PRODUCED = Counter("qbsync_messages_produced_total", "Messages written", ["topic"])
MESSAGES_FAILED = Counter(
    "qbsync_messages_failed_total", "Messages whose handling raised an error", ["topic"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "qbsync_messages_dead_lettered_total", "Messages sent to the topic's .dlq", ["topic"]
)
PROCESSING_SECONDS = Histogram(
    "qbsync_message_processing_seconds",
    "Time to handle one message",
    ["topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

QBO_REQUESTS = Counter(
    "qbsync_quickbooks_requests_total",
    "QuickBooks API requests by operation and HTTP status (or 'error' when none came back)",
    ["operation", "status"],
)
# Per realm, for the read allowance: qbsync_quickbooks_requests_total is shared with the
# token endpoint and keeps its labels.
QBO_REALM_CALLS = Counter(
    "qbsync_quickbooks_realm_calls_total",
    "QuickBooks API calls per realm; metered=true for the reads Intuit meters against the"
    " app's monthly allowance (query, read, CDC), false for writes",
    ["realm_id", "metered"],
)
QBO_RETRIES = Counter(
    "qbsync_quickbooks_retries_total", "QuickBooks requests retried", ["operation", "reason"]
)
QBO_THROTTLED = Counter(
    "qbsync_quickbooks_throttled_total", "QuickBooks 429 answers", ["operation"]
)
QBO_LIMITER_WAIT_SECONDS = Histogram(
    "qbsync_quickbooks_limiter_wait_seconds",
    "Time a request waited for the per-realm limiter",
    buckets=(0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60),
)

SYNC_RUN_STEPS = Counter(
    "qbsync_sync_run_steps_total",
    "Sync run steps finished, by step and outcome",
    ["step", "outcome"],
)
LINKS_CHANGED = Counter(
    "qbsync_links_changed_total", "Links created or removed, by how", ["change", "how"]
)
FIELDS_WRITTEN = Counter(
    "qbsync_fields_written_total", "Synced field values written, by side", ["side", "field"]
)
WEBHOOKS_REJECTED = Counter(
    "qbsync_webhooks_rejected_total",
    "Webhook deliveries refused, nothing processed (bad_signature: 401; bad_payload: 400)",
    ["reason"],
)
WEBHOOK_CHANGES_IGNORED = Counter(
    "qbsync_webhook_changes_ignored_total",
    "Webhook notifications that cost no QuickBooks call: entity (not one we sync),"
    " unknown_realm (no usable connection), covered (a CDC round already read it)",
    ["reason"],
)
CDC_POLLS_FAILED = Counter(
    "qbsync_cdc_polls_failed_total",
    "CDC rounds of one realm that failed (the other realms are polled all the same)",
    ["reason"],
)
SYNC_RUN_STEP_AGE_SECONDS = Gauge(
    "qbsync_sync_run_oldest_step_seconds",
    "Per step, how long the open run longest in it has been there (0: no run in it);"
    " set by the matcher's run advancer",
    ["step"],
)
CONNECTIONS_NEEDING_RECONNECT = Gauge(
    "qbsync_connections_needing_reconnect", "Firms whose QuickBooks connection needs reconnecting"
)


# What the lag exporter (`python -m qbsync.lag_exporter`) publishes. These are computed
# from the broker at each scrape, not counted inside a service, so they are declared as
# names here and turned into gauge families by the exporter's collector. The kafka_*
# names and labels are kafka-exporter's, so dashboards written for it work unchanged.
@dataclass(frozen=True)
class ExportedGauge:
    name: str
    documentation: str
    labels: tuple[str, ...]


CONSUMER_GROUP_LAG = ExportedGauge(
    "kafka_consumergroup_lag",
    "Messages a consumer group has still to consume on a partition",
    ("consumergroup", "topic", "partition"),
)
CONSUMER_GROUP_LAG_SUM = ExportedGauge(
    "kafka_consumergroup_lag_sum",
    "Messages a consumer group has still to consume on a topic, all partitions together",
    ("consumergroup", "topic"),
)
CONSUMER_GROUP_CURRENT_OFFSET = ExportedGauge(
    "kafka_consumergroup_current_offset",
    "The offset a consumer group last committed on a partition",
    ("consumergroup", "topic", "partition"),
)
TOPIC_PARTITION_CURRENT_OFFSET = ExportedGauge(
    "kafka_topic_partition_current_offset",
    "The end offset of a partition (the offset its next message will get)",
    ("topic", "partition"),
)
DLQ_MESSAGES = ExportedGauge(
    "qbsync_dlq_messages",
    "Messages held in a dead-letter topic",
    ("topic",),
)
DLQ_PENDING_MESSAGES = ExportedGauge(
    "qbsync_dlq_pending_messages",
    "Dead letters not yet redriven (`qbsync dlq redrive`) or discarded",
    ("topic",),
)
LAG_COLLECTION_SECONDS = ExportedGauge(
    "qbsync_lag_collection_seconds",
    "How long the exporter's last round of offset requests took",
    (),
)

LAG_EXPORTER_GAUGES: tuple[ExportedGauge, ...] = (
    CONSUMER_GROUP_LAG,
    CONSUMER_GROUP_LAG_SUM,
    CONSUMER_GROUP_CURRENT_OFFSET,
    TOPIC_PARTITION_CURRENT_OFFSET,
    DLQ_MESSAGES,
    DLQ_PENDING_MESSAGES,
    LAG_COLLECTION_SECONDS,
)

PUSHER_EVENTS = Counter(
    "qbsync_pusher_events_total",
    "Liscio account events handled by the pusher, by outcome",
    ["outcome"],
)

# The integration API (services/api): every request by method, route template and status.
API_REQUESTS = Counter(
    "qbsync_api_requests_total",
    "API requests by method, route template and HTTP status",
    ["method", "route", "status"],
)
API_REQUEST_SECONDS = Histogram(
    "qbsync_api_request_seconds",
    "Time to answer one API request, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
