"""The lag panel's numbers: the consumer lag of every qbsync group and the time each needs
to catch up, computed as `qbsync lag` computes them (qbsync/kafka/lag.py) from snapshots
the page's polling takes. One watcher per API process; it connects to Kafka on first use,
and its rate window fills as the panel refreshes."""

from __future__ import annotations

import asyncio
import time

from qbsync.kafka.lag import LagReport, RateTracker, build_report
from qbsync.kafka.offsets import OffsetsCollector

RATE_WINDOW_SECONDS = 60.0
# Viewers polling at once share one snapshot this fresh.
SHARED_FOR_SECONDS = 1.0


class LagWatch:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self._collector: OffsetsCollector | None = None
        self._rates = RateTracker(window_seconds=RATE_WINDOW_SECONDS)
        self._last: LagReport | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> LagReport:
        """Raises qbsync.errors.DependencyUnavailable when Kafka does not answer."""
        async with self._lock:
            if self._last is not None and time.time() - self._last.taken_at < SHARED_FOR_SECONDS:
                return self._last
            if self._collector is None:
                collector = OffsetsCollector(self.bootstrap, self.prefix, request_timeout_ms=5000)
                try:
                    await collector.start(attempts=1)
                except BaseException:
                    await collector.close()
                    raise
                self._collector = collector
            snapshot = await self._collector.collect()
            self._rates.add(snapshot)
            self._last = build_report(snapshot, self._rates)
            return self._last

    async def close(self) -> None:
        if self._collector is not None:
            await self._collector.close()
