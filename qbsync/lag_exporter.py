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
import sys
import time
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from qbsync import log as qlog
from qbsync.config import Settings, load_settings
from qbsync.errors import ConfigurationError, DependencyUnavailable
from qbsync.http import ServiceHttpServer
from qbsync.kafka.offsets import OffsetsCollector
from qbsync.lag_metrics import metric_families

SERVICE = "lag-exporter"
# The services' exit codes (qbsync/runtime.py), which this process does not import: it
# needs none of the database, QuickBooks or producer machinery the runtime starts.
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3
REUSE_SNAPSHOT_SECONDS = 1.0
log = logging.getLogger("qbsync.lag_exporter")


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
        log.error("cannot start: %s", exc)
        print(f"{SERVICE}: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_UNAVAILABLE) from None
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
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"{SERVICE}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    qlog.configure(SERVICE, settings.QBSYNC_LOG_LEVEL)

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await serve(settings, stopping)

    asyncio.run(run())


if __name__ == "__main__":
    main()
