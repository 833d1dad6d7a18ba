"""QuickBooks' per-realm throttles: requests per rolling window (batch items count one
each), batch requests per window, and requests in flight at once."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_MAX_REQUESTS_PER_WINDOW = 500
DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_MAX_IN_FLIGHT = 10
DEFAULT_MAX_BATCHES_PER_WINDOW = 40


@dataclass
class LimitSettings:
    max_requests_per_window: int = DEFAULT_MAX_REQUESTS_PER_WINDOW
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_batches_per_window: int = DEFAULT_MAX_BATCHES_PER_WINDOW

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RealmLimiter:
    settings: LimitSettings
    # One timestamp per request unit admitted, oldest first.
    _admitted: deque[float] = field(default_factory=deque)
    _batches: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    peak_in_flight: int = 0
    admitted_total: int = 0
    throttled_total: int = 0

    def try_admit(self, now: float, cost: int = 1, batch: bool = False) -> float | None:
        """Admit a request worth `cost` units (and count it in flight), or return how many
        seconds to wait before the quota allows it."""
        self._prune(now)
        limits = self.settings
        wait: float | None = None
        if self.in_flight >= limits.max_in_flight:
            wait = 1.0
        elif len(self._admitted) + cost > limits.max_requests_per_window:
            wait = self._wait_for(self._admitted, cost, limits.max_requests_per_window, now)
        elif batch and len(self._batches) + 1 > limits.max_batches_per_window:
            wait = self._wait_for(self._batches, 1, limits.max_batches_per_window, now)
        if wait is not None:
            self.throttled_total += 1
            return wait
        self._admitted.extend([now] * cost)
        if batch:
            self._batches.append(now)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.admitted_total += cost
        return None

    def release(self) -> None:
        self.in_flight -= 1

    def used_in_window(self, now: float) -> int:
        self._prune(now)
        return len(self._admitted)

    def snapshot(self, now: float) -> dict[str, Any]:
        self._prune(now)
        return {
            **self.settings.as_dict(),
            "used_in_window": len(self._admitted),
            "batches_in_window": len(self._batches),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "admitted_total": self.admitted_total,
            "throttled_total": self.throttled_total,
        }

    def reset_counters(self) -> None:
        self._admitted.clear()
        self._batches.clear()
        self.peak_in_flight = self.in_flight
        self.admitted_total = 0
        self.throttled_total = 0

    def _prune(self, now: float) -> None:
        horizon = now - self.settings.window_seconds
        for queue in (self._admitted, self._batches):
            while queue and queue[0] <= horizon:
                queue.popleft()

    def _wait_for(self, queue: deque[float], cost: int, limit: int, now: float) -> float:
        if cost > limit:
            return self.settings.window_seconds
        # The oldest entries must leave the window until `cost` more fit.
        must_leave = len(queue) + cost - limit
        return max(queue[must_leave - 1] + self.settings.window_seconds - now, 0.001)


def retry_after_header(wait: float) -> str:
    """Whole seconds, at least one, as HTTP's Retry-After wants."""
    return str(max(1, math.ceil(wait)))
