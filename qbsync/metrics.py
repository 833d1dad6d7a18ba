"""Every Prometheus metric the services export, declared once.

Each service process serves these on its own /metrics (qbsync/http.py); Prometheus adds
the job and instance labels, so no metric carries a service label of its own.
"""

from __future__ import annotations

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
QBO_RETRIES = Counter(
    "qbsync_quickbooks_retries_total", "QuickBooks requests retried", ["operation", "reason"]
)
QBO_THROTTLED = Counter("qbsync_quickbooks_throttled_total", "QuickBooks 429 answers", ["operation"])
QBO_LIMITER_WAIT_SECONDS = Histogram(
    "qbsync_quickbooks_limiter_wait_seconds",
    "Time a request waited for the per-realm limiter",
    buckets=(0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60),
)

SYNC_RUN_STEPS = Counter(
    "qbsync_sync_run_steps_total", "Sync run steps finished, by step and outcome", ["step", "outcome"]
)
LINKS_CHANGED = Counter(
    "qbsync_links_changed_total", "Links created or removed, by how", ["change", "how"]
)
FIELDS_WRITTEN = Counter(
    "qbsync_fields_written_total", "Synced field values written, by side", ["side", "field"]
)
CONNECTIONS_NEEDING_RECONNECT = Gauge(
    "qbsync_connections_needing_reconnect", "Firms whose QuickBooks connection needs reconnecting"
)
