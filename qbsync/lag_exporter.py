"""The lag exporter: `python -m qbsync.lag_exporter`, a small process of its own.

It publishes on /metrics, for Prometheus, the consumer lag of every group with the
QBSYNC_TOPIC_PREFIX (kafka-exporter's metric names and labels: `consumergroup`, `topic`,
`partition`), the end offset of every partition, and the size of every dead-letter topic.
The broker is read when Prometheus scrapes (one batched round, reused for a second so that
concurrent scrapes cost one), so the figures are never older than the scrape.

Configuration is the services': KAFKA_BOOTSTRAP_SERVERS, QBSYNC_TOPIC_PREFIX,
QBSYNC_HTTP_HOST and QBSYNC_HTTP_PORT (0 takes a free port; the URL is logged at start).
It needs no database. One instance is enough; more only repeat the same figures.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from qbsync.config import Settings
from qbsync.errors import DependencyUnavailable
from qbsync.http import ServiceHttpServer
from qbsync.kafka.dead_letter_topics import redrive_group, topics_with_dead_letters
from qbsync.kafka.lag import OffsetsSnapshot, build_report, dead_letter_backlogs
from qbsync.kafka.offsets import OffsetsCollector
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
from qbsync.runtime import exit_on_dependency_failure, settings_or_exit

SERVICE = "lag-exporter"
REUSE_SNAPSHOT_SECONDS = 1.0
log = logging.getLogger("qbsync.lag_exporter")


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


class _SnapshotCollector(Collector):
    """Hands the latest snapshot's families to prometheus_client's renderer."""

    def __init__(self) -> None:
        self.families: list[GaugeMetricFamily] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self.families)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # families change with every scrape; nothing to check at registration


class LagExporter:
    def __init__(self, offsets: OffsetsCollector, prefix: str) -> None:
        self.offsets = offsets
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=False)
        self._families = _SnapshotCollector()
        self.registry.register(self._families)
        self._lock = asyncio.Lock()
        self._collected_at = float("-inf")

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._collected_at < REUSE_SNAPSHOT_SECONDS:
                return
            snapshot = await self.offsets.collect()
            self._families.families = metric_families(snapshot, self.prefix)
            self._collected_at = time.monotonic()

    async def render(self) -> bytes:
        """The /metrics body. Kafka unreachable: 503, so Prometheus marks the target down."""
        try:
            await self.refresh()
        except DependencyUnavailable as exc:
            log.warning("cannot read offsets: %s", exc)
            raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None
        return generate_latest(self.registry)

    async def kafka_ok(self) -> bool:
        await self.refresh()
        return True


async def serve(settings: Settings, stopping: asyncio.Event) -> None:
    offsets = OffsetsCollector(settings.KAFKA_BOOTSTRAP_SERVERS, settings.QBSYNC_TOPIC_PREFIX)
    try:
        await offsets.start(settings.QBSYNC_CONNECT_ATTEMPTS)
    except DependencyUnavailable as exc:
        await offsets.close()
        exit_on_dependency_failure(SERVICE, exc)
    exporter = LagExporter(offsets, settings.QBSYNC_TOPIC_PREFIX)
    http = ServiceHttpServer(
        SERVICE, settings.QBSYNC_HTTP_HOST, settings.QBSYNC_HTTP_PORT, metrics=exporter.render
    )
    http.add_check("kafka", exporter.kafka_ok)
    try:
        port = await http.start()
        log.info("started", extra={"metrics": f"http://{settings.QBSYNC_HTTP_HOST}:{port}/metrics"})
        await stopping.wait()
    finally:
        await http.stop()
        await offsets.close()


def main() -> None:
    settings = settings_or_exit(SERVICE)

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await serve(settings, stopping)

    asyncio.run(run())


if __name__ == "__main__":
    main()
